"""Journal durability: the owner prunes only what is old AND committed, cursors are written
with fsync of file and directory and survive being torn, and a failing disk never stops
the publisher nor hides what is appended after it recovers."""

from __future__ import annotations

import errno
import os
import time
import types
from pathlib import Path
from typing import Any

import pytest

from services.writer.journals import Journals
from shared import journal, journal_cursor
from shared.journal import JournalWriter, Position


def _records(d: Path) -> list[bytes]:
    return [r.payload for r in journal.read(d)]


def _age(d: Path, seconds: float) -> None:
    old = time.time() - seconds
    for idx in journal.list_segments(d):
        os.utime(journal.segment_path(d, idx), (old, old))


# ---- retention by the owner ------------------------------------------------------------------
def test_owner_prunes_only_old_and_committed_segments_as_it_appends(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path, segment_bytes=10, retention_s=60.0, prune_every_s=1e-9)
    for i in range(5):
        w.append([bytes([i]) * 10])  # one segment each: 0..4, 4 open
    assert journal.list_segments(tmp_path) == [0, 1, 2, 3, 4]
    _age(tmp_path, 1000)
    w.append([b"x" * 10])  # nobody has registered: however old, nothing goes
    assert journal.list_segments(tmp_path) == [0, 1, 2, 3, 4, 5]
    journal.write_cursor(tmp_path, "writer", Position(3, 0))  # stored everything before segment 3
    w.append([b"y" * 10])
    assert journal.list_segments(tmp_path) == [3, 4, 5, 6], "0-2 old and committed; 3 not committed"
    journal.write_cursor(tmp_path, "writer", Position(99, 0))  # a cursor past the open segment
    w.append([b"z" * 10])  # opens 7; 3 and 4 are old and now committed; 5 and 6 are young
    assert journal.list_segments(tmp_path) == [5, 6, 7], "young segments and the open one stay"
    w.close()
    assert _records(tmp_path)[-1] == b"z" * 10


def test_owner_prunes_at_open_and_keeps_what_a_second_consumer_needs(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path, segment_bytes=10)
    for i in range(4):
        w.append([bytes([i]) * 10])
    w.close()
    journal.write_cursor(tmp_path, "writer", Position(3, 0))
    journal.write_cursor(tmp_path, "audit", Position(1, 0))
    _age(tmp_path, 1000)
    w2 = JournalWriter(tmp_path, retention_s=60.0)  # a restarted producer
    assert journal.list_segments(tmp_path) == [1, 2, 3], "its own segment 4 waits for an append"
    w2.append([b"n"])
    assert journal.list_segments(tmp_path) == [1, 2, 3, 4]
    w2.close()


def test_a_quiet_owner_closes_its_old_segment_and_prunes_it_on_upkeep(tmp_path: Path) -> None:
    """A publisher that stops appending (an idle arb, a poller between polls) must not keep its
    last segment past the retention: upkeep, on the owner's timer, closes it and prunes it."""
    w = JournalWriter(tmp_path, segment_age_s=100.0, retention_s=60.0, prune_every_s=10.0)
    t0 = time.monotonic()
    w.upkeep(t0)
    assert journal.list_segments(tmp_path) == [], "nothing appended: no empty segment on disk"
    w.append([b"last words"])
    journal.write_cursor(tmp_path, "writer", Position(99, 0))  # the writer stored everything
    _age(tmp_path, 1000)
    w.upkeep(t0 + 50.0)
    assert journal.list_segments(tmp_path) == [0], "younger than segment_age_s: still the open one"
    w.upkeep(t0 + 150.0)  # closed now (old), and pruned (old and committed)
    assert journal.list_segments(tmp_path) == []
    assert w.position() == Position(1, 0)
    w.append([b"again"])
    assert journal.list_segments(tmp_path) == [1] and _records(tmp_path) == [b"again"]
    w.close()


def test_a_consumer_at_the_end_of_a_closed_segment_lets_it_go(tmp_path: Path) -> None:
    """The writer's cursor of a quiet publisher stays at the END of its last segment (nothing
    comes after it to move it on): that segment is fully stored and must still be pruned."""
    w = JournalWriter(tmp_path, segment_age_s=100.0, retention_s=60.0, prune_every_s=1e-9)
    t0 = time.monotonic()
    w.append([b"a signal"])
    end = w.position()
    journal.write_cursor(tmp_path, "writer", Position(end.segment, end.offset - 1))  # not all of it
    _age(tmp_path, 1000)
    w.upkeep(t0 + 150.0)  # closed, but a byte is not stored yet
    assert journal.list_segments(tmp_path) == [0]
    journal.write_cursor(tmp_path, "writer", end)
    w.upkeep(t0 + 151.0)
    assert journal.list_segments(tmp_path) == []
    w.close()


def test_upkeep_never_prunes_the_open_segment_nor_uncommitted_ones(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path, segment_bytes=1, segment_age_s=100.0, retention_s=60.0, prune_every_s=1e-9)
    t0 = time.monotonic()
    w.append([b"a"])
    w.append([b"b"])  # 0 is full: closed; 1 is open
    _age(tmp_path, 1000)
    w.upkeep(t0 + 1.0)  # no consumer has registered: nothing goes
    assert journal.list_segments(tmp_path) == [0, 1]
    journal.write_cursor(tmp_path, "writer", Position(99, 0))
    w.upkeep(t0 + 2.0)  # 1 is open and younger than segment_age_s: kept, however old its file
    assert journal.list_segments(tmp_path) == [1]
    w.close()


def test_open_journal_takes_retention_from_config(tmp_path: Path) -> None:
    from tests.support.config import make_config

    cfg = make_config(tmp_path, journal={"retention_s": 123.0, "prune_interval_s": 7.0})
    w = journal.open_journal(cfg, "connector")
    assert (w.retention_s, w.prune_every_s) == (123.0, 7.0)
    w.close()


# ---- cursors -----------------------------------------------------------------------------------
class RecordingOps(journal_cursor.OsFileOps):
    """Real file operations, recorded in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def write_file(self, path: Path, data: bytes) -> None:
        super().write_file(path, data)
        self.calls.append(("write+fsync", path.name, ""))

    def link(self, src: Path, dst: Path) -> None:
        super().link(src, dst)
        self.calls.append(("link", src.name, dst.name))

    def replace(self, src: Path, dst: Path) -> None:
        super().replace(src, dst)
        self.calls.append(("replace", src.name, dst.name))

    def unlink(self, path: Path) -> None:
        super().unlink(path)
        self.calls.append(("unlink", path.name, ""))

    def fsync_dir(self, path: Path) -> None:
        super().fsync_dir(path)
        self.calls.append(("fsync_dir", path.name, ""))


def test_cursor_write_fsyncs_the_file_before_the_rename_and_the_directory_after(tmp_path: Path) -> None:
    ops = RecordingOps()
    journal.write_cursor(tmp_path, "writer", Position(1, 10), ops)
    assert ops.calls == [
        ("write+fsync", ".writer.tmp", ""),
        ("replace", ".writer.tmp", "writer"),
        ("fsync_dir", "consumers", ""),
    ]
    ops.calls.clear()
    journal.write_cursor(tmp_path, "writer", Position(2, 20), ops)
    assert ops.calls == [
        ("write+fsync", ".writer.tmp", ""),
        ("unlink", ".writer.prev.tmp", ""),
        ("link", "writer", ".writer.prev.tmp"),  # the current cursor is kept as the previous copy
        ("replace", ".writer.prev.tmp", ".writer.prev"),
        ("replace", ".writer.tmp", "writer"),
        ("fsync_dir", "consumers", ""),
    ]
    assert journal.load_cursor(tmp_path, "writer") == (Position(2, 20), "ok")
    assert journal_cursor.decode((tmp_path / "consumers" / ".writer.prev").read_bytes()) == Position(1, 10)
    assert journal_cursor.consumers(tmp_path) == ["writer"], "temp and previous copies are not consumers"


@pytest.mark.parametrize(
    "torn",
    [b"", b"\x00" * 16, b"12 3", b"12 345 deadbeef\n", b"abc def\n", b"1 2 3 4\n", b"9" * 300],
)
def test_a_torn_cursor_falls_back_to_the_previous_copy(tmp_path: Path, torn: bytes) -> None:
    journal.write_cursor(tmp_path, "writer", Position(4, 100))
    journal.write_cursor(tmp_path, "writer", Position(5, 200))
    (tmp_path / "consumers" / "writer").write_bytes(torn)
    before = journal_cursor.TORN_CURSORS._value.get()
    got = journal.load_cursor(tmp_path, "writer")
    if torn == b"12 3":  # a valid old-format cursor (no checksum): read as it is
        assert got == (Position(12, 3), "ok")
        return
    assert got == (Position(4, 100), "recovered")
    journal.load_cursor(tmp_path, "writer")  # read again: one torn file is one event
    assert journal_cursor.TORN_CURSORS._value.get() == before + 1
    assert journal.min_consumer_segment(tmp_path) == 4


def test_a_torn_cursor_without_a_good_copy_reads_from_the_journal_start(tmp_path: Path) -> None:
    cdir = tmp_path / "consumers"
    cdir.mkdir()
    (cdir / "writer").write_bytes(b"")
    (cdir / ".writer.prev").write_bytes(b"garbage")
    journal.write_cursor(tmp_path, "audit", Position(7, 0))
    assert journal.load_cursor(tmp_path, "writer") == (Position(0, 0), "recovered")
    # Retention keeps everything for it: a torn cursor never lets a segment go.
    assert journal.min_consumer_segment(tmp_path) == 0


def test_the_writer_replays_past_a_torn_cursor_and_rewrites_it(tmp_path: Path) -> None:
    pub = tmp_path / "synth"
    w = JournalWriter(pub)
    w.append([b"\x90"])  # an empty msgpack list: a record with no message, skipped by advance
    w.close()
    (pub / "consumers").mkdir()
    (pub / "consumers" / "writer").write_bytes(b"\x00\x00")
    js = Journals(tmp_path, "writer")
    assert [r.payload for r in js.records(pub, from_start=False)] == [b"\x90"], "reads from the start"
    js.advance({}, {}, frozenset(), time.time_ns(), 0)
    assert journal.load_cursor(pub, "writer").state == "ok"


# ---- a failing disk ------------------------------------------------------------------------
class FailingOs(types.SimpleNamespace):
    """``os`` for shared.journal, whose ``write`` writes a few bytes then fails with ENOSPC."""

    def __init__(self, real: Any) -> None:
        super().__init__()
        self.real = real
        self.full = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def write(self, fd: int, data: Any) -> int:
        if self.full:
            self.real.write(fd, bytes(data[:5]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return int(self.real.write(fd, data))


def test_a_full_disk_is_counted_and_what_follows_stays_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FailingOs(os)
    monkeypatch.setattr(journal, "os", fake)
    w = JournalWriter(tmp_path)
    failures = journal.WRITE_FAILURES._value.get()
    lost = journal.UNJOURNALED._value.get()
    w.append([b"before"])
    fake.full = True
    w.append([b"lost-1", b"lost-2"])  # does not raise: the caller publishes anyway
    w.append([b"lost-3"])
    assert journal.WRITE_FAILURES._value.get() == failures + 2
    assert journal.UNJOURNALED._value.get() == lost + 3
    assert journal.WRITE_FAILING._value.get() == 1
    fake.full = False
    w.append([b"after"])
    assert journal.WRITE_FAILING._value.get() == 0
    w.close()
    # The partial writes were cut: the record after the recovery is not hidden behind a torn one.
    assert _records(tmp_path) == [b"before", b"after"]
    assert journal.segment_path(tmp_path, 0).stat().st_size == journal.valid_length(
        journal.segment_path(tmp_path, 0)
    )
