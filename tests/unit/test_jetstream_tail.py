"""Following a real journal (written by shared.journal.JournalWriter) in bounded steps."""

from __future__ import annotations

from pathlib import Path

from services.jetstream.tail import JournalTail, scan_chunk
from shared import journal
from shared.journal import JournalWriter, Position


def payloads(n: int, size: int = 50, start: int = 0) -> list[bytes]:
    return [bytes([i % 251]) * size + str(i).encode() for i in range(start, start + n)]


def test_reads_across_segments_in_bounded_steps_like_shared_journal_read(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path, segment_bytes=2_000)
    for p in payloads(200):
        w.append([p])
    w.close()
    assert len(journal.list_segments(tmp_path)) > 3
    tail = JournalTail(tmp_path, Position(0, 0))
    got = []
    while True:
        step = tail.read(room=7, max_bytes=300)
        assert len(step.records) <= 7 and not step.torn_segments and not step.lost_segments
        if not step.records:
            break
        got += step.records
    expected = list(journal.read(tmp_path))
    assert [r.payload for r in got] == [r.payload for r in expected]
    assert [r.end for r in got] == [Position(r.segment, r.end) for r in expected]
    assert tail.behind_bytes() == 0


def test_follows_the_tail_as_it_is_written_and_resumes_from_a_position(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path, segment_bytes=10_000)
    tail = JournalTail(tmp_path, Position(0, 0))
    assert tail.read(100).records == []  # no segment yet
    w.append(payloads(3))
    first = tail.read(100).records
    assert len(first) == 3
    w.append(payloads(2, start=3))
    second = tail.read(100).records
    assert [r.payload for r in second] == payloads(2, start=3)
    again = JournalTail(tmp_path, first[1].end)
    assert [r.payload for r in again.read(100).records] == payloads(3)[2:] + payloads(2, start=3)
    w.close()


def test_a_partial_record_at_the_open_tail_is_waited_for(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path)
    w.append(payloads(2))
    w.close()
    seg = journal.segment_path(tmp_path, 0)
    whole = seg.read_bytes()
    seg.write_bytes(whole + whole[:30])  # a record being written: its header and part of it
    tail = JournalTail(tmp_path, Position(0, 0))
    step = tail.read(100)
    assert len(step.records) == 2 and not step.torn_segments
    assert tail.read(100).records == []  # still waiting, never past it


def test_a_closed_segment_with_a_torn_tail_is_counted_and_passed(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path)
    w.append(payloads(2))
    w.close()
    seg0 = journal.segment_path(tmp_path, 0)
    data = bytearray(seg0.read_bytes())
    data[-1] ^= 0xFF  # the last record's checksum no longer matches
    seg0.write_bytes(bytes(data))
    journal.segment_path(tmp_path, 1).write_bytes(b"")
    # Segment 1 holds one good record (written as a JournalWriter writes it); segment 0 stays torn.
    with open(journal.segment_path(tmp_path, 1), "ab") as fh:
        one = JournalWriter(tmp_path / "other")
        one.append(payloads(1, start=9))
        one.close()
        fh.write(journal.segment_path(tmp_path / "other", 0).read_bytes())
    tail = JournalTail(tmp_path, Position(0, 0))
    step = tail.read(100)
    assert [r.payload for r in step.records] == [payloads(2)[0], payloads(1, start=9)[0]]
    assert step.torn_segments == [0]


def test_a_segment_deleted_before_it_was_read_is_reported(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path, segment_bytes=100)
    for p in payloads(6):
        w.append([p])
    w.close()
    segments = journal.list_segments(tmp_path)
    journal.segment_path(tmp_path, segments[0]).unlink()
    journal.segment_path(tmp_path, segments[1]).unlink()
    left = len(list(journal.read(tmp_path)))
    tail = JournalTail(tmp_path, Position(segments[0], 0))
    step = tail.read(100)
    assert step.lost_segments == segments[:2]
    assert len(step.records) == left
    # A cursor at the end of a pruned segment is normal: nothing is reported.
    end = JournalTail(tmp_path, Position(segments[1], 10_000)).read(100)
    assert end.lost_segments == [] and len(end.records) == left


def test_scan_chunk_reads_one_large_record_whole(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path)
    big = b"z" * 100_000
    w.append([big, b"small"])
    w.close()
    scan = scan_chunk(journal.segment_path(tmp_path, 0), 0, max_bytes=1_000)
    assert [p for _, _, p in scan.records] == [big] and scan.more and scan.complete
