"""get_snapshot recovery that cannot loop (issue 15 item 5): the seq of an ``ok`` to
update_subscription, and snapshots matched to their get_snapshot by the ``id`` they carry."""

from __future__ import annotations

from typing import Any

import pytest

from shared.messages import Gap

from .test_connector_support import A, B, booted, counted, delta, kinds, snap


def ok(cid: int, sid: int, seq: int) -> dict[str, Any]:
    return {"id": cid, "sid": sid, "seq": seq, "type": "ok", "msg": {"market_tickers": [A, B]}}


def answer(sid: int, seq: int, ticker: str, cid: int) -> dict[str, Any]:
    return {**snap(sid, seq, ticker, yes=[("0.40", "10.00")]), "id": cid}


def gapped() -> tuple[Any, int, int]:
    """Booted (last seq 2), then a gap (3 and 4 lost): returns the get_snapshot's command id."""
    sc, sid = booted()
    out = sc.feed(delta(sid, 5, A, "0.40", "1.00"), now=1.0)
    assert kinds(out)[-1] == "gap"
    cmds = sc.commands()
    assert [c["params"]["action"] for c in cmds] == ["get_snapshot"]
    assert cmds[0]["params"]["sids"] == [sid]
    return sc, sid, cmds[0]["id"]


def gaps(out: list[Any], status: str) -> list[Gap]:
    return [m for m in out if isinstance(m, Gap) and m.status == status]


@pytest.mark.parametrize("ok_seq", [5, 6], ids=["ok-repeats-seq", "ok-takes-seq"])
def test_either_ok_convention_recovers_once_without_a_new_gap(ok_seq: int) -> None:
    sc, sid, cid = gapped()
    # The ok repeats the last seq (5), or takes the next (6); the snapshots follow it.
    first = ok_seq + 1
    out = sc.feed(ok(cid, sid, ok_seq), answer(sid, first, A, cid), answer(sid, first + 1, B, cid), now=1.1)
    assert gaps(out, "open") == []
    assert len(gaps(out, "recovered")) == 1
    assert sc.commands() == []  # no second get_snapshot: nothing read as a new gap
    assert not sc.recovery.open and not sc.recovery.invalid
    assert sc.s.table.by_sid[sid].last_seq == first + 1
    assert len(sc.s.resync.requests) == 0
    assert kinds(sc.feed(delta(sid, first + 2, A, "0.40", "1.00"), now=1.2)) == ["delta"]


def test_an_ok_seq_neither_last_nor_next_leaves_the_sequence_alone() -> None:
    sc, sid, cid = gapped()
    sc.feed(ok(cid, sid, 9), now=1.1)  # not last + 1: takes nothing
    assert sc.s.table.by_sid[sid].last_seq == 5
    out = sc.feed(answer(sid, 6, A, cid), answer(sid, 7, B, cid), now=1.2)
    assert gaps(out, "open") == [] and len(gaps(out, "recovered")) == 1


def test_an_ok_taking_a_number_on_add_markets_keeps_the_next_delta_in_order() -> None:
    sc, sid = booted()
    sc.feed(ok(99, sid, 3), now=1.0)
    out = sc.feed(delta(sid, 4, A, "0.40", "1.00"), now=1.1)
    assert kinds(out) == ["delta"]


def test_an_error_repeating_the_last_seq_takes_no_number() -> None:
    sc, sid = booted()
    err = {"type": "error", "sid": sid, "seq": 2, "msg": {"code": 8, "msg": "x"}}
    out = sc.feed(err, delta(sid, 3, A, "0.40", "1.00"), now=1.0)
    assert kinds(out) == ["delta"]


def test_a_snapshot_naming_no_request_of_ours_is_not_a_recovery() -> None:
    sc, sid, cid = gapped()
    before = counted(sc.s, "discarded", "unrequested_snapshot")
    out = sc.feed(ok(cid, sid, 5), answer(sid, 6, A, cid + 40), now=1.1)
    assert gaps(out, "recovered") == [] and "snap" not in kinds(out)
    assert counted(sc.s, "discarded", "unrequested_snapshot") - before == 1
    # It still held its place in the sequence: the real answers follow in order.
    out = sc.feed(answer(sid, 7, A, cid), answer(sid, 8, B, cid), now=1.2)
    assert gaps(out, "open") == [] and len(gaps(out, "recovered")) == 1


def test_a_subscriptions_own_snapshot_without_id_is_still_taken() -> None:
    sc, sid, _ = gapped()
    out = sc.feed(snap(sid, 6, A), snap(sid, 7, B), now=1.1)
    assert len(gaps(out, "recovered")) == 1


def test_a_market_break_while_its_snapshot_is_in_flight_asks_nothing_more() -> None:
    sc, sid = booted()
    sc.s.request_snapshots([A], "control", 1.0)
    (cmd,) = sc.commands()
    # Still VALID (a control request does not invalidate): a negative level breaks the market.
    out = sc.feed(delta(sid, 3, A, "0.40", "-50.00"), now=1.1)
    assert len(gaps(out, "open")) == 1
    assert sc.commands() == []  # the answer in flight comes later in the sequence: it covers this
    out = sc.feed(ok(cmd["id"], sid, 3), answer(sid, 4, A, cmd["id"]), now=1.2)
    assert len(gaps(out, "recovered")) == 1


def test_a_refused_get_snapshot_falls_back_to_resubscribe_at_the_resync_timeout() -> None:
    sc, _, cid = gapped()
    err = {"id": cid, "type": "error", "msg": {"code": 27, "msg": "rate"}}
    sc.feed(err, now=1.1)
    assert len(sc.s.resync.requests) == 0
    sc.s.tick(1.0 + sc.s.resync_timeout_s / 2, 0)
    assert sc.commands() == []
    sc.s.tick(1.0 + sc.s.resync_timeout_s + 0.1, 0)
    cmds = sc.commands()
    assert {c["cmd"] for c in cmds} == {"unsubscribe", "subscribe"}
    assert counted(sc.s, "resubscribes", "resync_timeout") == 1


def test_a_recovery_that_never_completes_resubscribes_and_forgets_its_requests() -> None:
    sc, sid, cid = gapped()
    sc.feed(ok(cid, sid, 6), answer(sid, 7, A, cid), now=1.1)  # B's answer never comes
    assert len(sc.s.resync.requests) == 1
    sc.s.tick(1.0 + sc.s.resync_timeout_s + 0.1, 0)
    assert counted(sc.s, "resubscribes", "resync_timeout") == 1
    assert len(sc.s.resync.requests) == 0


def test_snapshots_without_id_from_an_older_server_leave_no_request_waiting() -> None:
    sc, sid = booted()
    sc.s.request_snapshots([A], "control", 1.0)
    (cmd,) = sc.commands()
    sc.feed(ok(cmd["id"], sid, 2), snap(sid, 3, A), now=1.1)  # the answer names no id
    assert len(sc.s.resync.requests) == 0
    # So the market's next break asks again instead of waiting on that answer.
    sc.feed(delta(sid, 4, A, "0.40", "-50.00"), now=1.2)
    assert [c["params"]["action"] for c in sc.commands()] == ["get_snapshot"]


def test_once_oks_repeat_the_last_seq_an_ok_at_last_plus_one_reveals_a_lost_frame() -> None:
    sc, sid = booted()
    sc.feed(ok(90, sid, 2), now=1.0)  # this server's oks repeat the last seq
    assert sc.s.resync.ok_takes_seq is False
    # Delta 3 is lost; the ok after it repeats the server's last seq, 3.
    out = sc.feed(ok(91, sid, 3), delta(sid, 4, A, "0.40", "1.00"), now=1.1)
    (g,) = gaps(out, "open")
    assert (g.expected, g.received) == (3, 4)


def test_an_ok_taking_a_number_is_learned_and_keeps_taking() -> None:
    sc, sid = booted()
    out = sc.feed(
        ok(90, sid, 3), delta(sid, 4, A, "0.40", "1.00"), ok(91, sid, 5), delta(sid, 6, A, "0.40", "1.00")
    )
    assert kinds(out) == ["delta", "delta"] and sc.s.resync.ok_takes_seq is True


def test_a_removed_market_leaves_no_request_waiting() -> None:
    sc, sid, cid = gapped()
    sc.s.remove_markets([B], 1.1, 0)
    sc.feed(ok(cid, sid, 5), answer(sid, 6, A, cid), now=1.2)
    assert len(sc.s.resync.requests) == 0
