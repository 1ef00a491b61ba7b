"""Append-only journal: segment files of length-prefixed, checksummed records.

A durable publisher (connector, poller, arb) appends every frame payload here
before it publishes it; the writer replays from here after its committed
position. One directory per publisher (``<journal.dir>/<worker_id>/``).

Record: ``<u32 length><u32 crc32(payload)><payload>`` (little-endian). Segments are
``<index:012d>.seg``. Opening a writer scans the newest segment and cuts a torn
tail (short header, short payload or bad checksum: what a crash mid-write
leaves), then starts a fresh segment. Writes go to the OS with one ``write`` per
append, so a killed process loses nothing it already published; ``fsync``
decides what survives a machine crash.

Consumers record how far they have durably processed in ``consumers/<name>``
(segment and offset); retention deletes a closed segment only when it is older
than the retention AND every consumer is past it.
"""

from __future__ import annotations

import os
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Literal, NamedTuple

from prometheus_client import Counter

from shared.config import Config
from shared.log import get_logger

_HDR = struct.Struct("<II")
SUFFIX = ".seg"

TORN = Counter("kxfeed_journal_torn_tails_total", "Torn records cut from a journal tail on open")
APPENDED = Counter("kxfeed_journal_records_total", "Records appended to the journal")
PRUNED = Counter("kxfeed_journal_segments_pruned_total", "Journal segments deleted by retention")

_log = get_logger("journal")

FsyncPolicy = Literal["never", "segment", "batch"]


class Position(NamedTuple):
    segment: int
    offset: int


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
    def __init__(
        self,
        directory: str | Path,
        *,
        segment_bytes: int = 64 * 1024 * 1024,
        segment_age_s: float = 3600.0,
        fsync: FsyncPolicy = "segment",
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        self.segment_age_s = segment_age_s
        self.fsync = fsync
        segments = list_segments(self.directory)
        if segments:
            self._repair(segment_path(self.directory, segments[-1]))
        self.index = (segments[-1] + 1) if segments else 0
        self._fd = -1
        self._size = 0
        self._opened = 0.0
        self._open_segment()

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
        self._size = os.fstat(self._fd).st_size
        self._opened = time.monotonic()

    def _rotate(self) -> None:
        self._close_fd()
        self.index += 1
        self._open_segment()

    def _close_fd(self) -> None:
        if self._fd >= 0:
            if self.fsync != "never":
                os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1

    def append(self, records: list[bytes]) -> None:
        """Append records with one write; rotate first when the segment is full or old."""
        if self._size and (
            self._size >= self.segment_bytes or time.monotonic() - self._opened >= self.segment_age_s
        ):
            self._rotate()
        parts: list[bytes] = []
        for rec in records:
            parts.append(_HDR.pack(len(rec), zlib.crc32(rec)))
            parts.append(rec)
        buf = b"".join(parts)
        view = memoryview(buf)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._size += len(buf)
        if self.fsync == "batch":
            os.fsync(self._fd)
        APPENDED.inc(len(records))

    def position(self) -> Position:
        """Where the next record will be written."""
        return Position(self.index, self._size)

    def close(self) -> None:
        self._close_fd()

    def prune(self, retention_s: float, now: float | None = None) -> list[int]:
        """Delete closed segments older than ``retention_s`` that every consumer has passed."""
        now = time.time() if now is None else now
        floor = min_consumer_segment(self.directory)
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


def open_journal(config: Config, worker_id: str) -> JournalWriter:
    """The journal of durable publisher ``worker_id``, as ``[journal]`` configures it."""
    j = config.journal
    return JournalWriter(
        Path(j.dir) / worker_id, segment_bytes=j.segment_bytes, segment_age_s=j.segment_age_s, fsync=j.fsync
    )


def read(directory: str | Path, after: Position | None = None) -> Iterator[Record]:
    """Every valid record from ``after`` (a record's ``end``) onwards, across segments."""
    directory = Path(directory)
    for index in list_segments(directory):
        if after is not None and index < after.segment:
            continue
        start = after.offset if after is not None and index == after.segment else 0
        yield from scan_segment(segment_path(directory, index), start)


def _consumer_dir(directory: Path) -> Path:
    return directory / "consumers"


def write_cursor(directory: str | Path, consumer: str, pos: Position) -> None:
    """Record (atomically) that ``consumer`` has durably processed everything before ``pos``."""
    cdir = _consumer_dir(Path(directory))
    cdir.mkdir(parents=True, exist_ok=True)
    tmp = cdir / f".{consumer}.tmp"
    tmp.write_text(f"{pos.segment} {pos.offset}\n")
    os.replace(tmp, cdir / consumer)


def read_cursor(directory: str | Path, consumer: str) -> Position | None:
    path = _consumer_dir(Path(directory)) / consumer
    try:
        seg, off = path.read_text().split()
    except FileNotFoundError:
        return None
    return Position(int(seg), int(off))


def min_consumer_segment(directory: Path) -> int | None:
    """The oldest segment some consumer still needs (None when no consumer is registered)."""
    cdir = _consumer_dir(directory)
    if not cdir.is_dir():
        return None
    segments = [read_cursor(directory, p.name) for p in cdir.iterdir() if not p.name.startswith(".")]
    known = [pos.segment for pos in segments if pos is not None]
    return min(known) if known else None
