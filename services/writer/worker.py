"""The writer worker: stores every durable bus message exactly once.

CLI: ``kxfeed worker writer [--config FILE]``. At start it upgrades the schema
(refusing one newer than it knows), loads its committed stream positions, subscribes
to every durable kind, replays the journals from its position, then stores the live
stream in batches (``[writer] batch_rows`` / ``batch_ms``). A bus drop, a hole in a
stream, a buffer overflow during a database outage or a journaled message the live
path never delivered all lead back to a journal replay; unique keys and stream
positions make every re-delivery harmless. Control commands: ``flush``, ``replay``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import msgspec

from services.writer import metrics as m
from services.writer.batches import Store, WriteResult, open_store
from services.writer.core import Batch, OfferResult, WriterCore, waited_s
from services.writer.errors import classify
from services.writer.journals import Journals, record_head
from services.writer.jsmode import JetStreamMode
from services.writer.outage import Outage, open_database
from services.writer.prune import Pruner
from services.writer.rows import MAPPERS, STORED_KINDS
from shared.actor import Actor
from shared.backoff import Backoff
from shared.commands.base import Command
from shared.commands.flush import Flush
from shared.commands.replay import Replay
from shared.commands.table import CommandHandler
from shared.config import Config, WriterConfig
from shared.log import BurstLog
from shared.messages import BATCH_DECODER, Message
from shared.retry import Retry, RetryEvent, RetryPolicy, retrying
from shared.store.engine import make_engine

#: Topic prefixes of every kind the writer stores.
PREFIXES = [f"{kind}." for kind in sorted(STORED_KINDS)]
#: Most messages decoded per bus read.
READ_CHUNK = 2048


class Input(Protocol):
    """Where the live messages come from: the bus subscriber, or the JetStream source."""

    max_batch: int

    async def recv(self) -> list[Message]: ...
    def drain(self) -> list[Message]: ...
    def close(self) -> None: ...


class WriterWorker(Actor):
    name = "writer"

    def __new__(cls, config: Config, *, instance: str = "") -> WriterWorker:
        # [writer] source = "jetstream": the same writer, fed by a JetStream durable consumer.
        if cls is WriterWorker and config.writer.source == "jetstream":
            return super().__new__(JetStreamWriter)
        return super().__new__(cls)

    async def setup(self) -> None:
        assert isinstance(self.settings, WriterConfig)
        self.wc: WriterConfig = self.settings
        self.burst = BurstLog(self.log)
        self.engine = make_engine(self.config.db)
        self.store: Store = open_store(self.engine)
        offsets, polls = await open_database(
            self.engine, self.store, self.config.db, self._retry_policy(), self.burst, self.log, self.stopping
        )
        self.journals = Journals(self.config.journal.dir, self.worker_id)
        self.core = WriterCore(
            offsets,
            polls,
            self._recoverable(),
            # Below two batches and one bus read the buffer would shed in normal operation.
            max_buffer=max(self.wc.max_buffer_rows, 2 * self.wc.batch_rows + self.config.bus.max_batch),
            stored=MAPPERS.__contains__,
        )
        # An empty database owes everything the journals still hold, whatever an old cursor says.
        self._from_start = not offsets
        self.sub: Input = self._input()
        self.queue: asyncio.Queue[Batch] = asyncio.Queue(maxsize=max(1, self.wc.max_inflight_batches - 1))
        self._changed = asyncio.Event()
        self._main_done = asyncio.Event()
        self._cursor_lock = asyncio.Lock()
        self.outage = Outage(self.log)
        #: A background loop's bug: the main loop raises it, so the worker fails and restarts.
        self._bug: BaseException | None = None
        self.counters = {
            "accepted": 0,
            "rows": 0,
            "batches": 0,
            "retries": 0,
            "replays": 0,
            "lost": 0,
            "shed": 0,
            "duplicate_rows": 0,
        }
        self.spawn(self._flusher(), name="flusher")
        self.spawn(self._cursor_loop(), name="cursor")
        self.spawn(self._gauge_loop(), name="gauges")
        # Past [db] retention goes on its own schedule; a failing prune never stops storing.
        self.spawn(Pruner(self.engine, self.config.db, self.log).run(), name="prune")

    def _recoverable(self) -> Callable[[str], bool]:
        return self.journals.recoverable

    def _input(self) -> Input:
        sub = self.subscriber(PREFIXES, on_drop=self._on_drop)
        # The flusher's database round trips are answered on this event loop: decoding a
        # smaller bus read at a time keeps each one from waiting behind a long one.
        sub.max_batch = min(sub.max_batch, READ_CHUNK)
        return sub

    def _retry_policy(self) -> RetryPolicy:
        """Database I/O retries forever (the journals hold what the buffer cannot); bugs crash."""
        return RetryPolicy(
            Backoff(self.wc.retry_initial_s, max(self.wc.retry_max_s, self.wc.retry_initial_s))
        )

    # ---- main loop ---------------------------------------------------------------------------
    async def main(self) -> None:
        try:
            await self._replay("start")
            self.ready = True
            await self._live()
        finally:
            self._main_done.set()

    async def _live(self) -> None:
        batch_s = self.wc.batch_ms / 1000
        rows = self.wc.batch_rows
        idle_s = self.wc.idle_poll_ms / 1000
        first_at: float | None = None  # when the oldest buffered message arrived
        while not self.stopping.is_set():
            self._raise_bug()
            if self.core.replay_reason is not None and not self.outage.failing:
                await self._replay(self.core.replay_reason)
                continue
            stalled = self.outage.failing and self.queue.full()
            if first_at is None or stalled:
                timeout = batch_s
            elif self.core.buffered >= rows:
                timeout = 0.0  # a full batch is waiting: take what the bus has, do not wait for more
            else:
                timeout = first_at + batch_s - time.monotonic()
            msgs = await self._recv(timeout)
            if msgs:
                self._count(self.core.offer(msgs))
                # Also lets the flusher's replies in.
                await asyncio.sleep(idle_s if len(msgs) < self.sub.max_batch else 0)
            if not self.core.buffered:
                first_at = None
                continue
            if first_at is None:
                first_at = time.monotonic() - waited_s(msgs, time.time_ns(), batch_s)
            # Ship every full batch, and the partial one once its oldest message is batch_ms old.
            while self.core.buffered >= rows or (
                self.core.buffered and time.monotonic() - first_at >= batch_s
            ):
                if not await self._submit("live"):
                    break
                if not self.core.buffered:
                    first_at = None
                    break
                first_at = time.monotonic()

    async def _recv(self, timeout: float) -> list[Message]:
        if timeout <= 0:
            return self.sub.drain()
        try:
            return await asyncio.wait_for(self.sub.recv(), timeout)
        except TimeoutError:
            return []

    async def _submit(self, mode: str) -> bool:
        """Hand the next batch to the flusher, waiting for room. During an outage ``live`` and
        ``replay`` give up (the buffer absorbs, then sheds); ``drain`` keeps waiting."""
        while self.queue.full():
            if mode != "drain" and self.outage.failing:
                return False
            if mode != "drain" and self.stopping.is_set():
                return False
            self._changed.clear()
            await self._changed.wait()
            self._raise_bug()
        batch = self.core.take(self.wc.batch_rows)
        if batch is None:
            return False
        self.queue.put_nowait(batch)
        return True

    def _on_drop(self, pub: str, epoch: int, kind: str, first_missing: int, count: int) -> None:
        if self.journals.recoverable(pub):
            self.core.request_replay("drop")

    def _count(self, res: OfferResult) -> None:
        m.count_offer(res, self.counters, self.burst, self.log, self.wc.max_buffer_rows)

    # ---- journal replay ----------------------------------------------------------------------
    async def _replay(self, reason: str, *, final: bool = False) -> None:
        """Read the journals from the committed position; ``final`` = the last catch-up of a
        drain, which runs although the worker is stopping."""
        mode = "drain" if final else "replay"
        self.core.begin_replay()
        m.REPLAYS.labels(reason).inc()
        self.counters["replays"] += 1
        started = time.monotonic()
        records = accepted = skipped = 0
        from_start = self._from_start
        for pub, directory in self.journals.publishers():
            for rec in self.journals.records(directory, from_start=from_start):
                if self.stopping.is_set() and not final:
                    return
                records += 1
                if records % 32 == 0:  # short chunks: the flusher's replies wait for them
                    await asyncio.sleep(0)
                try:
                    head = record_head(rec.payload)
                    if head is not None and head.last_seq <= self.core.position(head.key):
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
                res = self.core.offer(msgs, replay=True)
                self._count(res)
                accepted += res.accepted
                while self.core.buffered >= self.wc.batch_rows:
                    if not await self._submit(mode):
                        if self.stopping.is_set():
                            return
                        # The database is failing: go back to draining the bus, and resume
                        # from the committed position once it is back.
                        self.core.request_replay(reason)
                        self.log.warning(
                            "journal replay paused: database failing",
                            extra={"ctx": {"reason": reason, "records": records, "accepted": accepted}},
                        )
                        return
        self._from_start = False
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

    # ---- flusher -----------------------------------------------------------------------------
    def _raise_bug(self) -> None:
        if self._bug is not None:
            raise self._bug

    def _note_bug(self, exc: BaseException, what: str, **ctx: Any) -> None:
        """A bug in a background loop: log it with its context and fail the worker. Nothing of
        the failed work is committed, so the restarted writer replays it from the journals."""
        # No traceback here: the Actor logs it once when the raising task fails the worker.
        self.log.error(
            f"{what} failed on a bug (not an outage): the writer stops and replays after its restart",
            extra={"ctx": {"error": repr(exc)[:300], **ctx}},
        )
        if self._bug is None:
            self._bug = exc
        self._changed.set()

    async def _flusher(self) -> None:
        while True:
            batch = await self.queue.get()
            self._changed.set()
            try:
                await self._write(batch)
            except Exception as exc:
                self._note_bug(exc, "batch write", rows=batch.row_count(), streams=len(batch.offsets))
                raise
            finally:
                self.queue.task_done()
                self._changed.set()

    async def _write(self, batch: Batch) -> None:
        data_failures = 0
        isolate = False

        started = 0.0

        async def attempt() -> WriteResult:
            nonlocal isolate, started
            started = time.perf_counter()
            isolate = data_failures >= 2
            return await asyncio.wait_for(
                self.store.write(batch, time.time_ns() // 1000, isolate=isolate), self.wc.write_timeout_s
            )

        def verdict(exc: BaseException) -> Retry | None:
            nonlocal data_failures
            kind = "timeout" if isinstance(exc, TimeoutError) else classify(exc)
            if kind == "bug":
                return None
            if kind == "data":
                data_failures += 1
            elif self.outage.tick():
                self._changed.set()
            return Retry(kind)

        async def note(e: RetryEvent) -> None:
            m.RETRIES.labels(e.reason).inc()
            self.counters["retries"] += 1
            self.burst.event(
                f"write-{e.reason}",
                "batch write failed; retrying",
                error=repr(e.error)[:300],
                attempt=e.attempt,
                rows=batch.row_count(),
                isolate=isolate,
            )
            await self.store.reset()

        # Only the write itself is retried: what follows a success is not I/O.
        res = await retrying(attempt, self._retry_policy(), verdict, note)
        self.outage.end()
        self.core.commit(batch)
        self._committed(batch, res, time.perf_counter() - started)
        self._after_commit(batch)
        self._set_gauges()

    def _committed(self, batch: Batch, res: WriteResult, seconds: float) -> None:
        m.count_batch(batch, res, seconds, time.time_ns(), self.counters, self.burst)

    def _after_commit(self, batch: Batch) -> None:
        """What a source does once a batch is in the database (JetStream acks it; the bus: no)."""

    # ---- gauges --------------------------------------------------------------------------------
    def _set_gauges(self) -> None:
        # Computed here, on the event loop: a scrape runs in prometheus_client's thread and
        # must not walk dicts the loop is changing.
        behind, seconds = self.core.lag(time.time_ns())
        m.LAG_MESSAGES.set(behind)
        m.LAG_SECONDS.set(seconds)
        m.BUFFERED.set(self.core.buffered)

    async def _gauge_loop(self) -> None:
        disk = {"data": Path(self.config.data_dir), "journal": Path(self.config.journal.dir)}
        next_disk = 0.0
        while True:
            self._set_gauges()
            if time.monotonic() >= next_disk:
                next_disk = time.monotonic() + self.wc.disk_interval_s
                await asyncio.to_thread(m.measure_disk, disk, self.log)
            await asyncio.sleep(1.0)

    # ---- journal cursor ----------------------------------------------------------------------
    async def _cursor_loop(self) -> None:
        while True:
            await asyncio.sleep(self.wc.cursor_interval_s)
            try:
                await self._advance_cursor()
            except Exception as exc:
                self._note_bug(exc, "journal cursor update")
                raise

    async def _advance_cursor(self) -> None:
        async with self._cursor_lock:
            try:
                report = await asyncio.to_thread(
                    self.journals.advance,
                    dict(self.core.committed),
                    dict(self.core.accepted),
                    STORED_KINDS,
                    time.time_ns(),
                    int(self.wc.tail_grace_s * 1e9),
                )
            except OSError as exc:  # a full or failing disk: the next round tries again
                m.CURSOR_ERRORS.inc()
                self.burst.event("cursor", "journal cursor update failed", error=repr(exc)[:300])
                return
        if report.missed and self.ready and not self.stopping.is_set():
            self.core.request_replay("tail")

    # ---- lifecycle -------------------------------------------------------------------------
    async def drain(self) -> None:
        await self._main_done.wait()
        if not self.outage.failing:
            # Producers stop first: whatever of theirs the live path missed is in the journals.
            await self._replay("drain", final=True)
        while self.core.buffered and await self._submit("drain"):
            pass
        await self.queue.join()
        await self._advance_cursor()

    async def teardown(self) -> None:
        self.sub.close()
        self.burst.flush()
        await self.store.close()
        await self.engine.dispose()

    def stats(self) -> dict[str, int]:
        if not hasattr(self, "core"):
            return {}
        lag_messages, lag_s = self.core.lag(time.time_ns())
        return {
            **self.counters,
            "buffered": self.core.buffered,
            "lag_messages": lag_messages,
            "lag_ms": int(lag_s * 1000),
            "db_up": int(not self.outage.failing),
            "outages": self.outage.count,
        }

    def commands(self) -> dict[type[Command], CommandHandler]:
        return {Flush: self._on_flush, Replay: self._on_replay}

    async def _on_flush(self, cmd: Flush) -> dict[str, int]:
        while self.core.buffered and await self._submit("drain"):
            pass
        await asyncio.wait_for(self.queue.join(), cmd.timeout_s)
        return self.stats()

    async def _on_replay(self, _: Replay) -> str:
        self.core.request_replay("control")
        return "replay requested"


class JetStreamWriter(JetStreamMode, WriterWorker):
    """``[writer] source = "jetstream"``: see :mod:`services.writer.jsmode`."""


WORKER = WriterWorker
