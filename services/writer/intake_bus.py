"""``[writer] source = "bus"`` (the default): the local bus live, the producers' journals behind it.

A bus drop, a hole in a stream, a buffer overflow during a database outage or a journaled
message the live path never delivered all lead back to a journal replay from the committed
positions; unique keys and stream positions make every re-delivery harmless. The journal cursor
(how far each journal may be pruned) follows what is committed.
"""

from __future__ import annotations

import asyncio
import logging
import time

import msgspec

from services.writer import metrics as m
from services.writer.core import Batch
from services.writer.intake import Feed, Input
from services.writer.journals import Journals, record_head
from services.writer.rows import STORED_KINDS
from shared.config import Config, WriterConfig
from shared.log import BurstLog
from shared.messages import BATCH_DECODER

#: Topic prefixes of every kind the writer stores.
PREFIXES = [f"{kind}." for kind in sorted(STORED_KINDS)]
#: Most messages decoded per bus read.
READ_CHUNK = 2048


class BusIntake:
    def __init__(
        self,
        feed: Feed,
        config: Config,
        wc: WriterConfig,
        worker_id: str,
        log: logging.Logger,
        burst: BurstLog,
        *,
        empty_db: bool,
    ) -> None:
        self.feed = feed
        self.wc = wc
        self.log = log
        self.burst = burst
        self.journals = Journals(config.journal.dir, worker_id)
        #: An empty database owes everything the journals still hold, whatever an old cursor says.
        self.from_start = empty_db
        self._cursor_lock = asyncio.Lock()

    def recoverable(self, pub: str) -> bool:
        return self.journals.recoverable(pub)

    def open(self) -> Input:
        sub = self.feed.subscriber(PREFIXES, on_drop=self._on_drop)
        # The flusher's database round trips are answered on this event loop: decoding a
        # smaller bus read at a time keeps each one from waiting behind a long one.
        sub.max_batch = min(sub.max_batch, READ_CHUNK)
        return sub

    def _on_drop(self, pub: str, epoch: int, kind: str, first_missing: int, count: int) -> None:
        if self.journals.recoverable(pub):
            self.feed.core.request_replay("drop")

    async def replay(self, reason: str, *, final: bool = False) -> None:
        """Read the journals from the committed position."""
        feed, core = self.feed, self.feed.core
        mode = "drain" if final else "replay"
        batch_rows = self.wc.batch_rows
        core.begin_replay()
        m.REPLAYS.labels(reason).inc()
        feed.counters["replays"] += 1
        started = time.monotonic()
        records = accepted = skipped = 0
        for pub, directory in self.journals.publishers():
            for rec in self.journals.records(directory, from_start=self.from_start):
                if feed.stopping.is_set() and not final:
                    return
                records += 1
                if records % 32 == 0:  # short chunks: the flusher's replies wait for them
                    await asyncio.sleep(0)
                try:
                    head = record_head(rec.payload)
                    if head is not None and head.last_seq <= core.position(head.key):
                        skipped += 1
                        continue
                    msgs = BATCH_DECODER.decode(rec.payload)
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    m.BAD_RECORDS.inc()
                    self.burst.event(
                        f"bad-record/{pub}",
                        "undecodable journal record skipped",
                        error=str(exc)[:200],
                        publisher=pub,
                    )
                    continue
                res = core.offer(msgs, replay=True)
                feed.count(res)
                accepted += res.accepted
                while core.buffered >= batch_rows:
                    if not await feed.submit(mode):
                        if feed.stopping.is_set():
                            return
                        # The database is failing: go back to draining the bus, and resume
                        # from the committed position once it is back.
                        core.request_replay(reason)
                        self.log.warning(
                            "journal replay paused: database failing",
                            extra={"ctx": {"reason": reason, "records": records, "accepted": accepted}},
                        )
                        return
        self.from_start = False
        m.REPLAYED.inc(accepted)
        self.log.info(
            "journal replay done",
            extra={
                "ctx": {
                    "reason": reason,
                    "records": records,
                    "skipped_records": skipped,
                    "accepted": accepted,
                    "seconds": round(time.monotonic() - started, 3),
                }
            },
        )

    def committed(self, batch: Batch) -> None:
        """Nothing to acknowledge: the journal cursor follows in :meth:`advance`."""

    async def advance(self) -> None:
        core = self.feed.core
        async with self._cursor_lock:
            try:
                report = await asyncio.to_thread(
                    self.journals.advance,
                    dict(core.committed),
                    dict(core.accepted),
                    STORED_KINDS,
                    time.time_ns(),
                    int(self.wc.tail_grace_s * 1e9),
                )
            except OSError as exc:  # a full or failing disk: the next round tries again
                m.CURSOR_ERRORS.inc()
                self.burst.event("cursor", "journal cursor update failed", error=repr(exc)[:300])
                return
        if report.missed and self.feed.ready and not self.feed.stopping.is_set():
            core.request_replay("tail")

    async def aclose(self) -> None:
        """The subscriber is closed by the worker with its other sockets."""

    def stats(self) -> dict[str, int]:
        return {}
