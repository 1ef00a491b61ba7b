"""The writer's journal view: record heads, recoverable publishers, the consumer cursor."""

from __future__ import annotations

from pathlib import Path

import zmq

from services.writer.journals import Journals, record_head
from services.writer.rows import STORED_KINDS
from shared import journal
from shared.bus import Publisher, stamp
from shared.journal import JournalWriter
from shared.messages import BATCH_ENCODER, Trade, WorkerEvent

NOW = 1_793_749_267_000_000_000


def _trade(i: int, recv: int = NOW) -> Trade:
    return Trade(
        trade_id=f"t{i}", ticker="T", yes_price=1, no_price=9999, count=1, taker_side="no", ts_recv=recv
    )


def publish(root: Path, pub_id: str, msgs: list, *, epoch: int = 5) -> None:
    """Journal frames the way a durable Publisher does (the socket goes nowhere)."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    jw = JournalWriter(root / pub_id)
    pub = Publisher(ctx, "inproc://nowhere", pub_id, epoch=epoch, journal=jw)
    for m in msgs:
        pub.publish(m)
    pub.close(0)
    jw.close()
    ctx.destroy(0)


def test_record_head_reads_the_last_message_of_a_frame() -> None:
    msgs = [_trade(i) for i in range(3)]
    stamp(msgs, "conn", 11, after=6)
    head = record_head(BATCH_ENCODER.encode(msgs))
    assert head is not None and head.key == ("conn", 11, "trade") and head.last_seq == 9
    assert record_head(BATCH_ENCODER.encode([])) is None


def test_recoverable_means_a_journal_directory_exists(tmp_path: Path) -> None:
    (tmp_path / "connector").mkdir()
    j = Journals(tmp_path, "writer")
    assert j.recoverable("connector")
    assert not j.recoverable("poller")
    assert not j.recoverable("../connector") and not j.recoverable("consumers")
    (tmp_path / "poller").mkdir()
    assert j.recoverable("poller")
    assert [name for name, _ in j.publishers()] == ["connector", "poller"]


def test_cursor_registers_then_advances_only_over_committed_records(tmp_path: Path) -> None:
    publish(tmp_path, "p", [_trade(i) for i in range(5)])
    j = Journals(tmp_path, "writer")
    d = tmp_path / "p"
    ends = [rec.end for rec in journal.read(d)]
    report = j.advance({}, {}, STORED_KINDS, NOW, 10**9)
    assert report.moved == 1 and journal.read_cursor(d, "writer") == journal.Position(0, 0)
    j.advance({("p", 5, "trade"): 3}, {("p", 5, "trade"): 5}, STORED_KINDS, NOW, 10**9)
    assert journal.read_cursor(d, "writer") == journal.Position(0, ends[2])
    report = j.advance({("p", 5, "trade"): 5}, {("p", 5, "trade"): 5}, STORED_KINDS, NOW, 10**9)
    assert report.moved == 1 and not report.missed
    assert journal.read_cursor(d, "writer") == journal.Position(0, ends[4])
    assert j.advance({("p", 5, "trade"): 5}, {}, STORED_KINDS, NOW, 10**9).moved == 0
    # the replay source starts at the cursor, or at the beginning when asked
    assert list(j.records(d, from_start=False)) == []
    assert len(list(j.records(d, from_start=True))) == 5


def test_records_of_kinds_not_stored_do_not_hold_the_cursor(tmp_path: Path) -> None:
    publish(tmp_path, "p", [WorkerEvent(worker="x", event="e", ts_recv=NOW), _trade(1)])
    j = Journals(tmp_path, "writer")
    j.advance({("p", 5, "trade"): 1}, {}, STORED_KINDS - {"wevent"}, NOW, 10**9)
    ends = [rec.end for rec in journal.read(tmp_path / "p")]
    assert journal.read_cursor(tmp_path / "p", "writer") == journal.Position(0, ends[1])


def test_old_journaled_messages_never_accepted_are_reported_missed(tmp_path: Path) -> None:
    publish(tmp_path, "p", [_trade(i, recv=NOW - 10 * 10**9) for i in range(3)])
    j = Journals(tmp_path, "writer")
    key = ("p", 5, "trade")
    # accepted (in the buffer, being written): not missed, just not committed yet
    assert not j.advance({key: 1}, {key: 3}, STORED_KINDS, NOW, 5 * 10**9).missed
    # not accepted but recent: the live path may still deliver it
    assert not j.advance({key: 1}, {key: 1}, STORED_KINDS, NOW - 6 * 10**9, 5 * 10**9).missed
    assert j.advance({key: 1}, {key: 1}, STORED_KINDS, NOW, 5 * 10**9).missed


def test_cursor_keeps_journal_retention_from_pruning_unstored_segments(tmp_path: Path) -> None:
    jw = JournalWriter(tmp_path / "p", segment_bytes=1)  # every append rotates
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    pub = Publisher(ctx, "inproc://nowhere", "p", epoch=5, journal=jw)
    for i in range(4):
        pub.publish(_trade(i))
    j = Journals(tmp_path, "writer")
    j.advance({("p", 5, "trade"): 2}, {}, STORED_KINDS, NOW, 10**9)
    removed = jw.prune(retention_s=0, now=10**12)
    # Segments up to the cursor go, the cursor's own too when it is at its very end (fully stored).
    assert removed and max(removed) <= journal.read_cursor(tmp_path / "p", "writer").segment  # type: ignore[union-attr]
    assert [r.segment for r in journal.read(tmp_path / "p")][:1] == [removed[-1] + 1]
    pub.close(0)
    jw.close()
    ctx.destroy(0)
