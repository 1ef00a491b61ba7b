"""Journal: records survive, torn tails are cut, rotation, replay from a position, retention."""

from __future__ import annotations

import os
import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from shared import journal
from shared.journal import JournalWriter, Position


def _records(d: Path, after: Position | None = None) -> list[bytes]:
    return [r.payload for r in journal.read(d, after)]


def test_append_and_read_back_in_order(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path)
    w.append([b"a", b"bb"])
    w.append([b"ccc"])
    w.close()
    assert _records(tmp_path) == [b"a", b"bb", b"ccc"]


def test_records_are_visible_before_close(tmp_path: Path) -> None:
    # A SIGKILLed producer must not lose what it already published: appends reach the OS at once.
    w = JournalWriter(tmp_path, fsync="never")
    w.append([b"published"])
    assert _records(tmp_path) == [b"published"]
    w.close()


@settings(max_examples=30, deadline=None)
@given(payloads=st.lists(st.binary(min_size=0, max_size=64), min_size=1, max_size=20), cut=st.integers(1, 40))
def test_torn_tail_is_cut_on_open_and_earlier_records_kept(
    tmp_path_factory: object, payloads: list[bytes], cut: int
) -> None:
    d = Path(tmp_path_factory.mktemp("j"))  # type: ignore[attr-defined]
    w = JournalWriter(d)
    w.append(payloads)
    w.close()
    seg = journal.segment_path(d, 0)
    size = seg.stat().st_size
    last_len = 8 + len(payloads[-1])
    keep = size - min(cut, last_len)  # tear somewhere inside the last record
    with open(seg, "r+b") as fh:
        fh.truncate(keep)
    w2 = JournalWriter(d)  # repairs segment 0, writes to segment 1
    w2.append([b"after"])
    w2.close()
    assert seg.stat().st_size == size - last_len
    assert _records(d) == [*payloads[:-1], b"after"]


def test_corrupted_checksum_is_treated_as_torn(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path)
    w.append([b"good", b"flipped"])
    w.close()
    seg = journal.segment_path(tmp_path, 0)
    data = bytearray(seg.read_bytes())
    data[-1] ^= 0xFF
    seg.write_bytes(bytes(data))
    assert _records(tmp_path) == [b"good"]
    JournalWriter(tmp_path).close()
    assert seg.stat().st_size == 8 + 4


def test_rotation_by_size_and_age(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path, segment_bytes=25)  # one 29-byte record fills a segment
    for i in range(5):
        w.append([b"x" * 20 + bytes([i])])
    w.close()
    assert len(journal.list_segments(tmp_path)) == 5
    w = JournalWriter(tmp_path / "age", segment_age_s=0.0)
    w.append([b"1"])
    w.append([b"2"])
    w.close()
    assert len(journal.list_segments(tmp_path / "age")) == 2
    assert _records(tmp_path) == [b"x" * 20 + bytes([i]) for i in range(5)]


def test_read_after_a_position_spans_segments(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path, segment_bytes=25)
    w.append([b"r0"])
    w.append([b"r1"])
    w.append([b"r2"])
    w.close()
    recs = list(journal.read(tmp_path))
    after_first = Position(recs[0].segment, recs[0].end)
    assert _records(tmp_path, after_first) == [b"r1", b"r2"]
    assert _records(tmp_path, Position(recs[-1].segment, recs[-1].end)) == []


def test_read_from_inside_a_segment_keeps_positions_absolute(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path)
    w.append([b"a" * i for i in range(1, 6)])
    w.close()
    full = list(journal.read(tmp_path))
    assert len(full) == 5 and len({r.segment for r in full}) == 1
    rest = list(journal.read(tmp_path, Position(full[1].segment, full[1].end)))
    assert rest == full[2:]  # same payloads, same (segment, offset, end): a cursor can resume from any


def test_prune_respects_retention_and_every_consumer(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path, segment_bytes=10)
    for i in range(4):
        w.append([bytes([i]) * 10])
    # Nobody has registered: nothing may be deleted, however old.
    assert w.prune(0.0, now=time.time() + 10) == []
    journal.write_cursor(tmp_path, "writer", Position(2, 0))
    journal.write_cursor(tmp_path, "audit", Position(1, 0))
    old = time.time() - 1000
    for idx in journal.list_segments(tmp_path):
        os.utime(journal.segment_path(tmp_path, idx), (old, old))
    assert w.prune(3600.0) == []  # younger than retention
    assert w.prune(60.0) == [0]  # "audit" still needs segment 1
    journal.write_cursor(tmp_path, "audit", Position(3, 0))
    assert w.prune(60.0) == [1]  # "writer" needs 2
    assert journal.read_cursor(tmp_path, "writer") == Position(2, 0)
    w.close()
    assert _records(tmp_path) == [bytes([2]) * 10, bytes([3]) * 10]
