"""Append-only journal: segment files of length-prefixed, checksummed records.

A durable publisher (connector, poller, arb) appends every frame payload here
before it publishes it; the writer replays from here after its committed
position. One directory per publisher (``<journal.dir>/<worker_id>/``).

Record: ``<u32 length><u32 crc32(payload)><payload>`` (little-endian). Segments are
``<index:012d>.seg``. Opening a writer scans the newest segment and cuts a torn
tail (short header, short payload or bad checksum: what a crash mid-write
leaves), then writes into a fresh segment, created at its first append (an idle publisher
leaves no empty segment behind). Writes go to the OS with one ``write`` per
append, so a killed process loses nothing it already published; ``fsync``
decides what survives a machine crash.

Consumers record how far they have durably processed in ``consumers/<name>``
(:mod:`shared.journal_cursor`: fsynced, checksummed, recovered when torn); retention
deletes a closed segment only when it is older than ``[journal] retention_s`` AND every
consumer is past it. The journal's owner (the process that appends) runs retention: at
open, then every ``prune_interval_s`` from :meth:`JournalWriter.upkeep`, which the owner calls
on a timer whether or not it appends; the same call closes a segment older than
``segment_age_s``, so a publisher that goes quiet does not keep its last records forever.

A failed append (disk full, I/O error) does not stop the publisher: the frame is still
published (the books and the writer's live path get it), the journal has a gap there,
counted and logged once per failure streak; appends resume when the disk does.
"""

from __future__ import annotations

import contextlib
import errno
import os
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Literal, NamedTuple

from prometheus_client import Counter, Gauge

from shared.config import Config
from shared.journal_cursor import (
    CursorRead,
    Position,
    consumer_positions,
    load_cursor,
    min_consumer_segment,
    read_cursor,
    write_cursor,
)
from shared.log import get_logger

__all__ = [
    "CursorRead",
    "JournalWriter",
    "Position",
    "Record",
    "list_segments",
    "load_cursor",
    "min_consumer_segment",
    "open_journal",
    "read",
    "read_cursor",
    "scan_segment",
    "segment_path",
    "write_cursor",
]

_HDR = struct.Struct("<II")
SUFFIX = ".seg"

TORN = Counter("kxfeed_journal_torn_tails_total", "Torn records cut from a journal tail on open")
APPENDED = Counter("kxfeed_journal_records_total", "Records appended to the journal")
PRUNED = Counter("kxfeed_journal_segments_pruned_total", "Journal segments deleted by retention")
PRUNE_ERRORS = Counter("kxfeed_journal_prune_errors_total", "Retention runs that failed on the file system")
WRITE_FAILURES = Counter(
    "kxfeed_journal_write_failures_total", "Journal appends that failed (disk full or failing)"
)
UNJOURNALED = Counter(
    "kxfeed_journal_unjournaled_records_total",
    "Records (bus frames) published without being journaled because the append failed",
)
WRITE_FAILING = Gauge("kxfeed_journal_write_failing", "1 while the last journal append failed")

_log = get_logger("journal")

FsyncPolicy = Literal["never", "segment", "batch"]


class Record(NamedTuple):
    segment: int
    offset: int  # where the record starts
    end: int  # where the next record starts
    payload: bytes


def segment_path(directory: Path, index: int) -> Path:
    return directory / f"{index:012d}{SUFFIX}"


def list_segments(directory: Path) -> list[int]:
    if not directory.is_dir():
        return []
    return sorted(int(p.stem) for p in directory.glob(f"*{SUFFIX}") if p.stem.isdigit())


def scan_segment(path: Path, start: int = 0) -> Iterator[Record]:
    """Yield the valid records of one segment from ``start``; stops at the first torn one."""
    index = int(path.stem)
    with open(path, "rb") as fh:
        # Only what is past ``start``: a cursor near the end of a 64 MB segment reads little.
        fh.seek(start)
        data = fh.read()
    pos = 0
    size = len(data)
    while pos + _HDR.size <= size:
        length, crc = _HDR.unpack_from(data, pos)
        end = pos + _HDR.size + length
        if end > size:
            return
        payload = data[pos + _HDR.size : end]
        if zlib.crc32(payload) != crc:
            return
        yield Record(index, start + pos, start + end, payload)
        pos = end


def valid_length(path: Path) -> int:
    end = 0
    for rec in scan_segment(path):
        end = rec.end
    return end


class JournalWriter:
    """The owner's handle on its journal: appends, rotation, and retention of its own segments.

    Retention runs here, in the process that writes the journal (at open, then from
    :meth:`upkeep` at most every ``prune_every_s``), so it works however the workers are run
    (``kxfeed up``, honcho, systemd). Only this process knows which segment is open, and it
    reads the consumers' cursors from disk: a stale read only keeps more.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        segment_bytes: int = 64 * 1024 * 1024,
        segment_age_s: float = 3600.0,
        fsync: FsyncPolicy = "segment",
        retention_s: float | None = None,
        prune_every_s: float = 60.0,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        self.segment_age_s = segment_age_s
        self.fsync = fsync
        self.retention_s = retention_s
        self.prune_every_s = prune_every_s
        segments = list_segments(self.directory)
        if segments:
            self._repair(segment_path(self.directory, segments[-1]))
        self.index = (segments[-1] + 1) if segments else 0
        self._fd = -1
        #: The current segment's file is not created yet (it is, at the first append to it).
        self._fresh = True
        self._size = 0
        self._opened = 0.0
        #: Records published without being journaled in the current failure streak.
        self._gap: int | None = None
        self._next_prune = 0.0
        self._maybe_prune(time.monotonic())

    def _repair(self, path: Path) -> None:
        good = valid_length(path)
        actual = path.stat().st_size
        if good != actual:
            TORN.inc()
            _log.warning(
                "journal: cut torn tail",
                extra={"ctx": {"segment": path.name, "valid_bytes": good, "cut_bytes": actual - good}},
            )
            with open(path, "r+b") as fh:
                fh.truncate(good)
                fh.flush()
                os.fsync(fh.fileno())

    def _open_segment(self) -> None:
        path = segment_path(self.directory, self.index)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._fresh = False
        self._size = os.fstat(self._fd).st_size
        self._opened = time.monotonic()

    def _rotate(self) -> None:
        """Close the current segment; the next one is created by the next append."""
        self._close_fd()
        self.index += 1
        self._fresh = True
        self._size = 0

    def _close_fd(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            try:
                if self.fsync != "never":
                    os.fsync(fd)
            finally:
                os.close(fd)

    def append(self, records: list[bytes]) -> None:
        """Append records with one write; rotate first when the segment is full or old.

        Never raises for the disk (full, failing, gone): the caller publishes the records
        anyway, so the live path and the books go on. The records are then not in the
        journal: counted (``kxfeed_journal_write_failures_total``, ``..._unjournaled_records_total``),
        logged once per failure streak, and a later append tries again. A partly written
        batch is cut off, so what is appended after the disk recovers stays readable.
        """
        now = time.monotonic()
        parts: list[bytes] = []
        for rec in records:
            parts.append(_HDR.pack(len(rec), zlib.crc32(rec)))
            parts.append(rec)
        buf = b"".join(parts)
        try:
            full = self._size >= self.segment_bytes or now - self._opened >= self.segment_age_s
            # After a segment failed mid-write (fd < 0, not fresh) the records go to a clean one.
            if (self._fd < 0 and not self._fresh) or (self._size and full):
                self._rotate()
            if self._fd < 0:
                self._open_segment()
            self._write(buf)
        except OSError as exc:
            self._failed(exc, len(records))
            return
        self._size += len(buf)
        APPENDED.inc(len(records))
        if self._gap is not None:
            _log.warning(
                "journal: writing again after a failure; records published meanwhile are not journaled",
                extra={"ctx": {"dir": str(self.directory), "unjournaled_records": self._gap}},
            )
            self._gap = None
            WRITE_FAILING.set(0)
        if now >= self._next_prune:
            self._maybe_prune(now)

    def upkeep(self, now: float | None = None) -> None:
        """Time-driven duties, called by the owner on a timer (monotonic ``now``).

        Closes a non-empty segment older than ``segment_age_s`` (so retention can take it once
        it is old and committed) and runs retention when it is due. Never raises for the disk.
        """
        now = time.monotonic() if now is None else now
        if self._fd >= 0 and self._size and now - self._opened >= self.segment_age_s:
            try:
                self._rotate()
            except OSError as exc:  # fsync/close of the old segment failed: its data was written
                _log.warning(
                    "journal: closing an old segment failed",
                    extra={"ctx": {"dir": str(self.directory), "segment": self.index, "error": str(exc)}},
                )
                self.index += 1
                self._fresh = True
                self._size = 0
        if now >= self._next_prune:
            self._maybe_prune(now)

    def _write(self, buf: bytes) -> None:
        view = memoryview(buf)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            if self.fsync == "batch":
                os.fsync(self._fd)
        except OSError:
            try:
                os.ftruncate(self._fd, self._size)
            except OSError:
                # Cannot even cut it: leave this segment with its torn tail (the next open
                # cuts it) and write the next records into a fresh one.
                with contextlib.suppress(OSError):  # the fd is closed either way
                    os.close(self._fd)
                self._fd = -1
            raise

    def _failed(self, exc: OSError, records: int) -> None:
        WRITE_FAILURES.inc()
        UNJOURNALED.inc(records)
        WRITE_FAILING.set(1)
        if self._gap is None:
            self._gap = 0
            _log.error(
                "journal: append failed; publishing without the journal until it recovers",
                extra={
                    "ctx": {
                        "dir": str(self.directory),
                        "segment": self.index,
                        "errno": errno.errorcode.get(exc.errno or 0, str(exc.errno)),
                        "error": str(exc),
                    }
                },
            )
        self._gap += records

    def position(self) -> Position:
        """Where the next record will be written."""
        return Position(self.index, self._size)

    def close(self) -> None:
        self._close_fd()

    def _maybe_prune(self, now: float) -> None:
        if self.retention_s is None:
            return
        self._next_prune = now + self.prune_every_s
        try:
            self.prune(self.retention_s)
        except OSError as exc:
            PRUNE_ERRORS.inc()
            _log.warning(
                "journal: retention failed; trying again later",
                extra={"ctx": {"dir": str(self.directory), "error": str(exc)}},
            )

    def prune(self, retention_s: float, now: float | None = None) -> list[int]:
        """Delete closed segments older than ``retention_s`` that every consumer has passed."""
        now = time.time() if now is None else now
        floor = self._needed_from()
        removed = []
        for index in list_segments(self.directory):
            if floor is None or index >= floor or index >= self.index:
                break
            path = segment_path(self.directory, index)
            if now - path.stat().st_mtime < retention_s:
                break
            path.unlink()
            removed.append(index)
        if removed:
            PRUNED.inc(len(removed))
            _log.info(
                "journal: pruned segments", extra={"ctx": {"dir": str(self.directory), "count": len(removed)}}
            )
        return removed

    def _needed_from(self) -> int | None:
        """The oldest segment some consumer still needs; None when no consumer is registered.

        A consumer at the very end of a closed segment needs only the next one: a quiet
        publisher writes nothing after it, so the cursor would never move past it otherwise.
        """
        positions = consumer_positions(self.directory)
        if not positions:
            return None
        needed = []
        for pos in positions:
            segment = pos.segment
            if segment < self.index:
                try:
                    if pos.offset >= segment_path(self.directory, segment).stat().st_size:
                        segment += 1
                except FileNotFoundError:
                    segment += 1
            needed.append(segment)
        return min(needed)


def open_journal(config: Config, worker_id: str) -> JournalWriter:
    """The journal of durable publisher ``worker_id``, as ``[journal]`` configures it."""
    j = config.journal
    return JournalWriter(
        Path(j.dir) / worker_id,
        segment_bytes=j.segment_bytes,
        segment_age_s=j.segment_age_s,
        fsync=j.fsync,
        retention_s=j.retention_s,
        prune_every_s=j.prune_interval_s,
    )


def read(directory: str | Path, after: Position | None = None) -> Iterator[Record]:
    """Every valid record from ``after`` (a record's ``end``) onwards, across segments."""
    directory = Path(directory)
    for index in list_segments(directory):
        if after is not None and index < after.segment:
            continue
        start = after.offset if after is not None and index == after.segment else 0
        yield from scan_segment(segment_path(directory, index), start)
