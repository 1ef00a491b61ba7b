"""Consumer cursors of a journal: how far a consumer (the writer) has durably processed it.

``<journal>/consumers/<name>`` holds one line, ``<segment> <offset> <crc32>``: everything
before that position is stored. Retention reads it to know what it may delete, so the file
must survive a machine crash and must never claim more than was stored.

Writing (:func:`write_cursor`): the new line goes to a temp file which is fsynced, the
current cursor is kept as ``.<name>.prev`` (a hard link, no copy), the temp file is renamed
over the cursor, and the directory is fsynced so both renames are on disk. A crash leaves
the old cursor, the new one, or (on a filesystem that lost the rename's data) a torn one.

Reading (:func:`load_cursor`): a cursor that does not parse or whose checksum does not
match is *torn*: counted (``kxfeed_journal_cursor_torn_total``), logged once, and replaced
by the previous copy, or by the journal's start when that is torn too. Either way it only
goes back: the consumer re-reads what it already stored and the database keys drop the
duplicates; nothing is lost and the consumer never crash-loops. A cursor written by an
older kxfeed (``<segment> <offset>``, no checksum) is read as it is.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Literal, NamedTuple, Protocol

from prometheus_client import Counter

from shared.log import get_logger

TORN_CURSORS = Counter(
    "kxfeed_journal_cursor_torn_total",
    "Consumer cursor files that did not parse (empty, torn, bad checksum) and were recovered from",
)

_log = get_logger("journal")
#: (path, size, mtime) of torn cursors already counted: a file read every second is one event.
_reported: set[tuple[str, int, int]] = set()
_MAX_CURSOR_BYTES = 256


class Position(NamedTuple):
    segment: int
    offset: int


class CursorRead(NamedTuple):
    position: Position | None  # None: no cursor (the consumer never registered)
    state: Literal["ok", "missing", "recovered"]


class FileOps(Protocol):
    """The file system calls a cursor write makes, in order (a fake records them in tests)."""

    def write_file(self, path: Path, data: bytes) -> None:
        """Create or truncate ``path``, write ``data`` and fsync it."""

    def link(self, src: Path, dst: Path) -> None: ...
    def replace(self, src: Path, dst: Path) -> None: ...
    def unlink(self, path: Path) -> None: ...
    def fsync_dir(self, path: Path) -> None: ...


class OsFileOps:
    def write_file(self, path: Path, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)

    def link(self, src: Path, dst: Path) -> None:
        os.link(src, dst)

    def replace(self, src: Path, dst: Path) -> None:
        os.replace(src, dst)

    def unlink(self, path: Path) -> None:
        path.unlink(missing_ok=True)

    def fsync_dir(self, path: Path) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


OS = OsFileOps()


def consumer_dir(directory: Path) -> Path:
    return directory / "consumers"


def encode(pos: Position) -> bytes:
    body = f"{pos.segment} {pos.offset}"
    return f"{body} {zlib.crc32(body.encode()):08x}\n".encode()


def decode(data: bytes) -> Position | None:
    """The position a cursor file holds, or None when it is torn (total: never raises)."""
    if len(data) > _MAX_CURSOR_BYTES:
        return None
    try:
        parts = data.decode("ascii").split()
    except UnicodeDecodeError:
        return None
    if len(parts) == 3:
        body = f"{parts[0]} {parts[1]}"
        if f"{zlib.crc32(body.encode()):08x}" != parts[2]:
            return None
    elif len(parts) != 2:
        return None
    seg, off = parts[0], parts[1]
    if not (seg.isdigit() and off.isdigit() and len(seg) <= 18 and len(off) <= 18):
        return None
    return Position(int(seg), int(off))


def write_cursor(directory: str | Path, consumer: str, pos: Position, ops: FileOps = OS) -> None:
    """Record, durably, that ``consumer`` has processed everything before ``pos``."""
    cdir = consumer_dir(Path(directory))
    cdir.mkdir(parents=True, exist_ok=True)
    cur, tmp = cdir / consumer, cdir / f".{consumer}.tmp"
    prev, prev_tmp = cdir / f".{consumer}.prev", cdir / f".{consumer}.prev.tmp"
    # Data first: the rename below must never publish a cursor whose bytes are not on disk.
    ops.write_file(tmp, encode(pos))
    if cur.exists():
        ops.unlink(prev_tmp)
        ops.link(cur, prev_tmp)
        ops.replace(prev_tmp, prev)
    ops.replace(tmp, cur)
    ops.fsync_dir(cdir)


def _read(path: Path) -> tuple[bytes | None, os.stat_result | None]:
    try:
        with open(path, "rb") as fh:
            return fh.read(_MAX_CURSOR_BYTES + 1), os.fstat(fh.fileno())
    except FileNotFoundError:
        return None, None


def load_cursor(directory: str | Path, consumer: str) -> CursorRead:
    cdir = consumer_dir(Path(directory))
    path = cdir / consumer
    data, st = _read(path)
    if data is None or st is None:
        return CursorRead(None, "missing")
    pos = decode(data)
    if pos is not None:
        return CursorRead(pos, "ok")
    prev_data, _ = _read(cdir / f".{consumer}.prev")
    fallback = decode(prev_data) if prev_data is not None else None
    recovered = fallback if fallback is not None else Position(0, 0)
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _reported:
        _reported.add(key)
        TORN_CURSORS.inc()
        _log.warning(
            "journal: torn consumer cursor; reading from an earlier position (duplicates are dropped "
            "by the database keys)",
            extra={
                "ctx": {
                    "cursor": str(path),
                    "bytes": st.st_size,
                    "from": "previous cursor" if fallback is not None else "journal start",
                    "segment": recovered.segment,
                    "offset": recovered.offset,
                }
            },
        )
    return CursorRead(recovered, "recovered")


def read_cursor(directory: str | Path, consumer: str) -> Position | None:
    return load_cursor(directory, consumer).position


def consumers(directory: Path) -> list[str]:
    cdir = consumer_dir(directory)
    if not cdir.is_dir():
        return []
    return sorted(p.name for p in cdir.iterdir() if not p.name.startswith(".") and p.is_file())


def consumer_positions(directory: Path) -> list[Position]:
    """Every registered consumer's position (a cursor that cannot be read is not a position)."""
    positions = [read_cursor(directory, name) for name in consumers(directory)]
    return [pos for pos in positions if pos is not None]


def min_consumer_segment(directory: Path) -> int | None:
    """The oldest segment some consumer still needs (None when no consumer is registered)."""
    known = [pos.segment for pos in consumer_positions(directory)]
    return min(known) if known else None
