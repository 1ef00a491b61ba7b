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
from typing import Any

import msgspec

from services.writer import metrics as m
from services.writer.batches import Store, WriteResult, classify, open_store
from services.writer.core import Batch, OfferResult, StreamKey, WriterCore, waited_s
from services.writer.journals import Journals, record_head
from services.writer.rows import MAPPERS, STORED_KINDS, PollContent
from shared.actor import Actor
from shared.config import WriterConfig
from shared.log import BurstLog
from shared.messages import BATCH_DECODER, Message
from shared.store.engine import make_engine, redact
from shared.store.migrate import SchemaTooNew, upgrade

#: Topic prefixes of every kind the writer stores.
PREFIXES = [f"{kind}." for kind in sorted(STORED_KINDS)]
#: Most messages decoded per bus read.
READ_CHUNK = 2048


class WriterWorker(Actor):
    name = "writer"

    async def setup(self) -> None:
        assert isinstance(self.settings, WriterConfig)
        self.wc: WriterConfig = self.settings
        self.burst = BurstLog(self.log)
        self.engine = make_engine(self.config.db)
        self.store: Store = open_store(self.engine)
        offsets, polls = await self._open_database()
        self.journals = Journals(self.config.journal.dir, self.worker_id)
        self.core = WriterCore(
            offsets,
            polls,
            self.journals.recoverable,
            # Below two batches and one bus read the buffer would shed in normal operation.
            max_buffer=max(self.wc.max_buffer_rows, 2 * self.wc.batch_rows + self.config.bus.max_batch),
            stored=MAPPERS.__contains__,
        )
        # An empty database owes everything the journals still hold, whatever an old cursor says.
        self._from_start = not offsets
        self.sub = self.subscriber(PREFIXES, on_drop=self._on_drop)
        # The flusher's database round trips are answered on this event loop: decoding a
        # smaller bus read at a time keeps each one from waiting behind a long one.
        self.sub.max_batch = min(self.sub.max_batch, READ_CHUNK)
        self.queue: asyncio.Queue[Batch] = asyncio.Queue(maxsize=max(1, self.wc.max_inflight_batches - 1))
        self._changed = asyncio.Event()
        self._main_done = asyncio.Event()
        self._cursor_lock = asyncio.Lock()
        self.outage_since: float | None = None
        self._outage_mark = 0.0
        self.counters = {
            "accepted": 0,
            "rows": 0,
            "batches": 0,
            "retries": 0,
            "replays": 0,
            "lost": 0,
            "shed": 0,
        }
        m.DB_UP.set(1)
        self.spawn(self._flusher(), name="flusher")
        self.spawn(self._cursor_loop(), name="cursor")
        self.spawn(self._gauge_loop(), name="gauges")

    async def _open_database(self) -> tuple[dict[StreamKey, int], dict[str, PollContent]]:
        """Upgrade the schema and load the committed state, retrying while the database is down."""
        attempt = 0
        while True:
            try:
                before, head = await upgrade(self.engine, self.config.db)
                state = await self.store.load_state()
                await self.store.warm()
            except SchemaTooNew:
                raise
            except Exception as exc:
                if classify(exc) == "data" or self.stopping.is_set():
                    raise
                m.RETRIES.labels("connect").inc()
                self.burst.event(
                    "open-db",
                    "database unavailable at start; retrying",
                    error=repr(exc)[:300],
                    attempt=attempt + 1,
                )
                await asyncio.sleep(self._backoff(attempt))
                attempt += 1
                continue
            self.log.info(
                "database ready",
                extra={"ctx": {"url": redact(self.config.db.url), "schema_from": before, "schema": head}},
            )
            return state

    def _backoff(self, attempt: int) -> float:
        return float(min(self.wc.retry_max_s, self.wc.retry_initial_s * 2 ** min(attempt, 30)))

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
            if self.core.replay_reason is not None and self.outage_since is None:
                await self._replay(self.core.replay_reason)
                continue
            stalled = self.outage_since is not None and self.queue.full()
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
            if mode != "drain" and self.outage_since is not None:
                return False
            if mode != "drain" and self.stopping.is_set():
                return False
            self._changed.clear()
            await self._changed.wait()
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
    async def _flusher(self) -> None:
        while True:
            batch = await self.queue.get()
            self._changed.set()
            try:
                await self._write(batch)
            finally:
                self.queue.task_done()
                self._changed.set()

    async def _write(self, batch: Batch) -> None:
        attempt = 0
        data_failures = 0
        while True:
            started = time.perf_counter()
            isolate = data_failures >= 2
            try:
                res = await asyncio.wait_for(
                    self.store.write(batch, time.time_ns() // 1000, isolate=isolate), self.wc.write_timeout_s
                )
            except Exception as exc:
                kind = "timeout" if isinstance(exc, TimeoutError) else classify(exc)
                if kind == "data":
                    data_failures += 1
                else:
                    self._outage_tick()
                m.RETRIES.labels(kind).inc()
                self.counters["retries"] += 1
                self.burst.event(
                    f"write-{kind}",
                    "batch write failed; retrying",
                    error=repr(exc)[:300],
                    attempt=attempt + 1,
                    rows=batch.row_count(),
                    isolate=isolate,
                )
                await self.store.reset()
                await asyncio.sleep(self._backoff(attempt))
                attempt += 1
                continue
            self._outage_end()
            self.core.commit(batch)
            self._committed(batch, res, time.perf_counter() - started)
            self._set_gauges()
            return

    def _committed(self, batch: Batch, res: WriteResult, seconds: float) -> None:
        m.count_batch(batch, res, seconds, time.time_ns(), self.counters, self.burst)

    def _outage_tick(self) -> None:
        now = time.monotonic()
        if self.outage_since is None:
            self.outage_since = self._outage_mark = now
            m.DB_UP.set(0)
            self.log.warning("database failing: keeping position, retrying with backoff")
            self._changed.set()
        else:
            m.OUTAGE_SECONDS.inc(now - self._outage_mark)
            self._outage_mark = now

    def _outage_end(self) -> None:
        if self.outage_since is None:
            return
        now = time.monotonic()
        m.OUTAGE_SECONDS.inc(now - self._outage_mark)
        self.log.info("database back", extra={"ctx": {"outage_s": round(now - self.outage_since, 3)}})
        self.outage_since = None
        m.DB_UP.set(1)

    # ---- gauges --------------------------------------------------------------------------------
    def _set_gauges(self) -> None:
        # Computed here, on the event loop: a scrape runs in prometheus_client's thread and
        # must not walk dicts the loop is changing.
        behind, seconds = self.core.lag(time.time_ns())
        m.LAG_MESSAGES.set(behind)
        m.LAG_SECONDS.set(seconds)
        m.BUFFERED.set(self.core.buffered)

    async def _gauge_loop(self) -> None:
        while True:
            self._set_gauges()
            await asyncio.sleep(1.0)

    # ---- journal cursor ----------------------------------------------------------------------
    async def _cursor_loop(self) -> None:
        while True:
            await asyncio.sleep(self.wc.cursor_interval_s)
            await self._advance_cursor()

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
            except Exception as exc:
                m.CURSOR_ERRORS.inc()
                self.burst.event("cursor", "journal cursor update failed", error=repr(exc)[:300])
                return
        if report.missed and self.ready and not self.stopping.is_set():
            self.core.request_replay("tail")

    # ---- lifecycle -------------------------------------------------------------------------
    async def drain(self) -> None:
        await self._main_done.wait()
        if self.outage_since is None:
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
            "db_up": int(self.outage_since is None),
        }

    async def on_control(self, cmd: str, args: dict[str, Any]) -> Any:
        if cmd == "flush":
            while self.core.buffered and await self._submit("drain"):
                pass
            await asyncio.wait_for(self.queue.join(), float(args.get("timeout_s", 10.0)))
            return self.stats()
        if cmd == "replay":
            self.core.request_replay("control")
            return "replay requested"
        return await super().on_control(cmd, args)


WORKER = WriterWorker
