"""The writer's view of the producers' journals: replay sources and its consumer cursor.

Layout (see :mod:`shared.journal`): ``<journal.dir>/<publisher id>/`` holds one
publisher's segments and ``consumers/<name>`` cursors. A publisher is *recoverable*
when its journal directory exists: its durable frames were on disk before they were
on the bus.

The cursor says how far the writer has durably stored a journal. It advances over
records whose every message is committed (or of a kind the writer does not store)
and stops at the first one that is not. A record that is not even *accepted* yet,
and older than a grace period, means the live path missed it (a slow-joining
subscription, a lost frame at the end of a burst): :meth:`Journals.advance` reports
it so the worker replays.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import msgspec

from services.writer.core import StreamKey
from shared import journal
from shared.messages import Message

_PUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_RAW_LIST = msgspec.msgpack.Decoder(list[msgspec.Raw])
_ONE: msgspec.msgpack.Decoder[Message] = msgspec.msgpack.Decoder(Message)
_YIELD_EVERY = 200  # records (~1 ms of decoding)


class RecordHead(NamedTuple):
    key: StreamKey
    last_seq: int
    ts_recv: int


def record_head(payload: bytes) -> RecordHead | None:
    """Stream and last seq of a journal record, decoding only its last message.

    A record is one bus frame: messages of one topic, hence one stream, in seq order.
    """
    raws = _RAW_LIST.decode(payload)
    if not raws:
        return None
    last = _ONE.decode(raws[-1])
    return RecordHead((last.pub, last.epoch, last.kind), last.seq, last.ts_recv)


class CursorReport(NamedTuple):
    moved: int  # journals whose cursor advanced
    missed: bool  # some journal holds old messages the writer never accepted
    bad_records: int


class Journals:
    def __init__(self, root: str | Path, consumer: str) -> None:
        self.root = Path(root)
        self.consumer = consumer
        self._known: set[str] = set()

    def recoverable(self, pub: str) -> bool:
        if pub in self._known:
            return True
        if not _PUB_ID.match(pub) or pub == "consumers":
            return False
        if (self.root / pub).is_dir():
            self._known.add(pub)
            return True
        return False

    def publishers(self) -> list[tuple[str, Path]]:
        if not self.root.is_dir():
            return []
        return sorted((p.name, p) for p in self.root.iterdir() if p.is_dir() and _PUB_ID.match(p.name))

    def records(self, directory: Path, *, from_start: bool) -> Iterator[journal.Record]:
        after = None if from_start else journal.read_cursor(directory, self.consumer)
        return journal.read(directory, after)

    def advance(
        self,
        committed: dict[StreamKey, int],
        accepted: dict[StreamKey, int],
        stored_kinds: frozenset[str],
        now_ns: int,
        grace_ns: int,
    ) -> CursorReport:
        """Move each journal's cursor past what is committed. Blocking file I/O: run in a thread."""
        moved = 0
        missed = False
        bad = 0
        for _, directory in self.publishers():
            old, state = journal.load_cursor(directory, self.consumer)
            new = old
            if new is None:
                segments = journal.list_segments(directory)
                if not segments:
                    continue
                # Register at once, so retention keeps what the writer has not read yet.
                new = journal.Position(segments[0], 0)
            for n, rec in enumerate(journal.read(directory, old), 1):
                if not n % _YIELD_EVERY:
                    # This runs in a thread beside the event loop: hand the GIL back now and then.
                    # Held for the whole switch interval (5 ms) each time the loop waits on a
                    # socket, it stretched commits at 10,000 msgs/s past 0.5 s.
                    time.sleep(0)
                try:
                    head = record_head(rec.payload)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    bad += 1
                    head = None
                if (
                    head is None
                    or head.key[2] not in stored_kinds
                    or head.last_seq <= committed.get(head.key, 0)
                ):
                    new = journal.Position(rec.segment, rec.end)
                    continue
                if head.last_seq > accepted.get(head.key, 0) and now_ns - head.ts_recv > grace_ns:
                    missed = True
                break
            if new != old or state == "recovered":  # a torn cursor is rewritten at once
                journal.write_cursor(directory, self.consumer, new)
                moved += 1
        return CursorReport(moved, missed, bad)
