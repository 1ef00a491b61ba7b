"""The writer worker: stores every durable bus message exactly once.

CLI: ``kxfeed worker writer [--config FILE]``. At start it upgrades the schema
(refusing one newer than it knows), loads its committed stream positions, subscribes
to every durable kind, replays the journals from its position, then stores the live
stream in batches (``[writer] batch_rows`` / ``batch_ms``). Where the messages come from
and how missed ones are delivered again is the intake's (:mod:`intake`): the bus and the
journals (:mod:`intake_bus`), or JetStream (:mod:`intake_jetstream`, ``[writer] source``).
Unique keys and stream positions make every re-delivery harmless. Control commands:
``flush``, ``replay``.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from services.writer import metrics as m
from services.writer.batches import Store, WriteResult, open_store
from services.writer.core import Batch, OfferResult, WriterCore, waited_s
from services.writer.errors import classify
from services.writer.intake import Input, Intake
from services.writer.intake_bus import BusIntake
from services.writer.intake_jetstream import JetStreamIntake
from services.writer.jsack import config_problems
from services.writer.outage import Outage, open_database
from services.writer.prune import Pruner
from services.writer.rows import MAPPERS
from shared.actor import Actor
from shared.backoff import Backoff
from shared.commands.base import Command
from shared.commands.flush import Flush
from shared.commands.replay import Replay
from shared.commands.table import CommandHandler
from shared.config import Config, ConfigError, WriterConfig
from shared.log import BurstLog
from shared.messages import Message
from shared.retry import Retry, RetryEvent, RetryPolicy, retrying
from shared.store.engine import make_engine


class WriterWorker(Actor):
    name = "writer"

    def __init__(self, config: Config, *, instance: str = "") -> None:
        if config.writer.source == "jetstream":
            problems = config_problems(config)
            if problems:
                raise ConfigError("; ".join(problems))
        super().__init__(config, instance=instance)

    async def setup(self) -> None:
        assert isinstance(self.settings, WriterConfig)
        self.wc: WriterConfig = self.settings
        self.burst = BurstLog(self.log)
        self.engine = make_engine(self.config.db)
        self.store: Store = open_store(self.engine)
        offsets, polls = await open_database(
            self.engine, self.store, self.config.db, self._retry_policy(), self.burst, self.log, self.stopping
        )
        self.intake: Intake = (
            JetStreamIntake(self, self.config, self.wc, self.worker_id, self.log)
            if self.wc.source == "jetstream"
            else BusIntake(
                self, self.config, self.wc, self.worker_id, self.log, self.burst, empty_db=not offsets
            )
        )
        self.core = WriterCore(
            offsets,
            polls,
            self.intake.recoverable,
            # Below two batches and one bus read the buffer would shed in normal operation.
            max_buffer=max(self.wc.max_buffer_rows, 2 * self.wc.batch_rows + self.config.bus.max_batch),
            stored=MAPPERS.__contains__,
        )
        self.sub: Input = self.intake.open()
        self.queue: asyncio.Queue[Batch] = asyncio.Queue(maxsize=max(1, self.wc.max_inflight_batches - 1))
        self._changed = asyncio.Event()
        self._main_done = asyncio.Event()
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

    def _retry_policy(self) -> RetryPolicy:
        """Database I/O retries forever (the journals hold what the buffer cannot); bugs crash."""
        return RetryPolicy(
            Backoff(self.wc.retry_initial_s, max(self.wc.retry_max_s, self.wc.retry_initial_s))
        )

    # ---- main loop ---------------------------------------------------------------------------
    async def main(self) -> None:
        try:
            await self.intake.replay("start")
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
                await self.intake.replay(self.core.replay_reason)
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
                self.count(self.core.offer(msgs))
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
                if not await self.submit("live"):
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

    async def submit(self, mode: str) -> bool:
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

    def count(self, res: OfferResult) -> None:
        m.count_offer(res, self.counters, self.burst, self.log, self.wc.max_buffer_rows)

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
        self.intake.committed(batch)
        self._set_gauges()

    def _committed(self, batch: Batch, res: WriteResult, seconds: float) -> None:
        m.count_batch(batch, res, seconds, time.time_ns(), self.counters, self.burst)

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

    # ---- the intake's cursor ----------------------------------------------------------------
    async def _cursor_loop(self) -> None:
        while True:
            await asyncio.sleep(self.wc.cursor_interval_s)
            try:
                await self.intake.advance()
            except Exception as exc:
                self._note_bug(exc, "journal cursor update")
                raise

    # ---- lifecycle -------------------------------------------------------------------------
    async def drain(self) -> None:
        await self._main_done.wait()
        if not self.outage.failing:
            # Producers stop first: whatever of theirs the live path missed is in the journals.
            await self.intake.replay("drain", final=True)
        while self.core.buffered and await self.submit("drain"):
            pass
        await self.queue.join()
        await self.intake.advance()

    async def teardown(self) -> None:
        self.sub.close()
        await self.intake.aclose()
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
            **self.intake.stats(),
        }

    def commands(self) -> dict[type[Command], CommandHandler]:
        return {Flush: self._on_flush, Replay: self._on_replay}

    async def _on_flush(self, cmd: Flush) -> dict[str, int]:
        while self.core.buffered and await self.submit("drain"):
            pass
        await asyncio.wait_for(self.queue.join(), cmd.timeout_s)
        return self.stats()

    async def _on_replay(self, _: Replay) -> str:
        self.core.request_replay("control")
        return "replay requested"


WORKER = WriterWorker
