"""Following one publisher's journal from a position, a bounded chunk at a time.

``shared.journal.read`` reads the rest of a segment in one go (right for the writer's replay);
the bridge follows the tail all day and may be far behind after an outage, so it reads at most
``CHUNK`` bytes per look and never holds more than the ledger has room for.

Record format (:mod:`shared.journal`): ``<u32 length><u32 crc32(payload)><payload>``.

Segment hand-over: a newer segment existing *before* this one is read to its end means this one
is closed (the owner appends only to its newest). A closed segment whose tail does not parse
lost that tail in a crash: counted (``torn``), and the reader goes on with the next segment.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import NamedTuple

from shared.journal import Position, list_segments, segment_path

_HDR = struct.Struct("<II")
CHUNK = 4 * 1024 * 1024
#: Larger than any bus frame can be (the proxy refuses more than 2 GiB, default 16 MiB).
_MAX_RECORD = 2**31


class Rec(NamedTuple):
    end: Position
    payload: bytes


class Scan(NamedTuple):
    records: list[tuple[int, int, bytes]]  # (offset, end, payload)
    complete: bool  # False: stopped at a partial or bad record (a tail being written, or torn)
    more: bool  # stopped at max_bytes with more to read


def scan_chunk(path: Path, start: int, max_bytes: int = CHUNK) -> Scan:
    """The whole records from ``start`` within about ``max_bytes`` (always at least one whole
    record when the file holds one, however large)."""
    with open(path, "rb") as fh:
        fh.seek(start)
        data = fh.read(max(max_bytes, _HDR.size))
        if len(data) >= _HDR.size:
            length, _ = _HDR.unpack_from(data, 0)
            need = _HDR.size + length
            if need > len(data) and length <= _MAX_RECORD:
                data += fh.read(need - len(data))
        at_eof = not fh.read(1)
    out: list[tuple[int, int, bytes]] = []
    pos, size = 0, len(data)
    while pos + _HDR.size <= size:
        length, crc = _HDR.unpack_from(data, pos)
        end = pos + _HDR.size + length
        if end > size:
            break
        payload = data[pos + _HDR.size : end]
        if zlib.crc32(payload) != crc:
            return Scan(out, False, False)
        out.append((start + pos, start + end, payload))
        pos = end
    if pos == size:
        return Scan(out, True, not at_eof)
    if not at_eof and out:  # a record cut by max_bytes: the next call reads it
        return Scan(out, True, True)
    return Scan(out, False, False)  # a partial tail: being written, or torn by a crash


class TailStep(NamedTuple):
    records: list[Rec]
    torn_segments: list[int]  # closed segments whose tail did not parse
    lost_segments: list[int]  # segments gone before they were read (pruned under the reader)


class JournalTail:
    """The read position in one publisher's journal."""

    def __init__(self, directory: Path, start: Position) -> None:
        self.directory = directory
        self.pos = start

    def read(self, room: int, max_bytes: int = CHUNK) -> TailStep:
        """Up to ``room`` records after the position (advancing it), about ``max_bytes`` at most."""
        records: list[Rec] = []
        torn: list[int] = []
        lost: list[int] = []
        budget = max_bytes
        segments = list_segments(self.directory)
        while room > len(records) and budget > 0 and segments:
            seg, off = self.pos
            if seg not in segments:
                later = [s for s in segments if s > seg]
                if not later:
                    break
                # A position at the end of a pruned segment is normal (retention takes a segment
                # once every consumer is at its end); segments skipped past it were never read.
                lost.extend(range(seg + 1 if off > 0 else seg, later[0]))
                self.pos = Position(later[0], 0)
                continue
            newer = segments[-1] > seg  # looked at BEFORE reading: see the module docstring
            try:
                scan = scan_chunk(segment_path(self.directory, seg), off, budget)
            except FileNotFoundError:
                segments = list_segments(self.directory)
                continue
            take = scan.records[: room - len(records)]
            if take:
                records.extend([Rec(Position(seg, end), payload) for _, end, payload in take])
                budget -= take[-1][1] - take[0][0]
                self.pos = records[-1].end
            if len(records) >= room or scan.more:
                continue
            if not newer:
                break
            if self.pos.offset != segment_size(self.directory, seg):
                torn.append(seg)
            self.pos = Position(seg + 1, 0)
        return TailStep(records, torn, lost)

    def behind_bytes(self) -> int:
        """Journal bytes after the read position (what the bridge has not even read)."""
        total = 0
        for seg in list_segments(self.directory):
            if seg < self.pos.segment:
                continue
            size = segment_size(self.directory, seg)
            total += max(0, size - self.pos.offset) if seg == self.pos.segment else size
        return total


def segment_size(directory: Path, seg: int) -> int:
    try:
        return segment_path(directory, seg).stat().st_size
    except FileNotFoundError:
        return 0
