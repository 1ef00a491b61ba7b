"""A seq far ahead is a gap, recovered in band at once; the frames after it are not duplicates."""

from __future__ import annotations

from shared.messages import BookState, Gap

from .test_connector_support import A, B, booted, counted, delta, kinds, snap

FAR = 10**18


def test_seq_jumping_to_ten_to_the_18_is_recovered_in_band_without_duplicates() -> None:
    sc, sid = booted()
    dups = counted(sc.s, "duplicates")
    reanchored = counted(sc.s, "reanchored")
    out = sc.feed(delta(sid, 3, A, "0.40", "1.00"), delta(sid, FAR, A, "0.40", "1.00"), now=1.0)
    gaps = [m for m in out if isinstance(m, Gap)]
    assert len(gaps) == 1 and (gaps[0].expected, gaps[0].received) == (4, FAR)
    cmds = sc.commands()
    assert [c["params"]["action"] for c in cmds] == ["get_snapshot"]
    # The stream goes on at its real sequence: those frames wait for snapshots, none a duplicate.
    out = sc.feed(*(delta(sid, seq, B, "0.40", "1.00") for seq in range(4, 1217)), now=1.1)
    assert out == []
    assert counted(sc.s, "duplicates") == dups
    assert counted(sc.s, "reanchored") - reanchored == 1
    # The snapshots answering get_snapshot continue that sequence and close the gap at once.
    out = sc.feed(snap(sid, 1217, A, yes=[("0.30", "1.00")]), snap(sid, 1218, B), now=1.2)
    assert kinds(out) == ["snap", "bookstate", "snap", "bookstate", "gap"]
    closed = out[-1]
    assert isinstance(closed, Gap) and closed.status == "recovered" and closed.method == "get_snapshot"
    assert all(m.valid for m in out if isinstance(m, BookState))
    out = sc.feed(delta(sid, 1219, A, "0.30", "1.00"), now=1.3)
    assert kinds(out) == ["delta"]
    # Recovered before any timeout: nothing escalated to a resubscribe.
    sc.s.tick(100.0, 0)
    assert sc.commands() == []
    assert not sc.recovery.open and not sc.recovery.invalid


def test_a_real_gap_then_in_order_frames_keeps_later_duplicates_duplicates() -> None:
    sc, sid = booted()
    out = sc.feed(delta(sid, 6, A, "0.40", "1.00"), now=1.0)  # expected 3: a real gap
    assert kinds(out) == ["bookstate", "bookstate", "gap"]
    sc.commands()
    out = sc.feed(snap(sid, 7, A), snap(sid, 8, B), now=1.1)
    assert [m.kind for m in out].count("snap") == 2
    dups = counted(sc.s, "duplicates")
    out = sc.feed(delta(sid, 5, A, "0.40", "1.00"), delta(sid, 9, A, "0.40", "1.00"), now=1.2)
    assert kinds(out) == ["delta"]
    assert counted(sc.s, "duplicates") - dups == 1


def test_jump_confirmed_by_the_next_frame_is_the_new_sequence() -> None:
    sc, sid = booted()
    sc.feed(delta(sid, FAR, A, "0.40", "1.00"), now=1.0)
    sc.commands()
    out = sc.feed(snap(sid, FAR + 1, A), snap(sid, FAR + 2, B), delta(sid, FAR + 3, A, "0.5", "1"), now=1.1)
    assert kinds(out)[-1] == "delta"
    dups = counted(sc.s, "duplicates")
    sc.feed(delta(sid, 3, A, "0.40", "1.00"))  # after the jump was confirmed, old seqs are stale
    assert counted(sc.s, "duplicates") - dups == 1


def test_lifecycle_seq_far_ahead_does_not_silence_later_gaps() -> None:
    sc, _ = booted()
    lsid = sc.s.table.lifecycle.sid  # type: ignore[union-attr]

    def life(seq: int) -> dict[str, object]:
        return {
            "type": "market_lifecycle_v2",
            "sid": lsid,
            "seq": seq,
            "msg": {"market_ticker": A, "event_type": "activated"},
        }

    sc.feed(life(1), life(2), life(FAR))
    assert [(g.expected, g.received) for g in sc.s.lifecycle_gaps] == [(3, FAR)]
    sc.s.lifecycle_gaps = []
    out = sc.feed(life(3), life(4))
    assert kinds(out) == ["lifecycle", "lifecycle"]
    assert not sc.s.lifecycle_gaps
    sc.feed(life(9))  # a real gap after the re-anchor is still seen
    assert [(g.expected, g.received) for g in sc.s.lifecycle_gaps] == [(5, 9)]
