"""The database outage the writer is in, if any: since when, for how long, how many so far.

An outage starts with the first write that fails on a transient error
(:mod:`services.writer.errors`) and ends with the next write that succeeds. While it lasts
the writer keeps its position and retries with backoff; ``kxfeed_writer_db_up`` is 0 and
``kxfeed status`` shows ``db_up=0`` and the ``outages`` count in the writer's counters.
"""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy.ext.asyncio import AsyncEngine

from services.writer import metrics as m
from services.writer.batches import Store
from services.writer.core import StreamKey
from services.writer.errors import classify
from services.writer.rows import PollContent
from shared.config import DbConfig
from shared.log import BurstLog
from shared.retry import Retry, RetryEvent, RetryPolicy, retrying
from shared.store.engine import redact
from shared.store.migrate import SchemaTooNew, upgrade


class Outage:
    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self.since: float | None = None  # monotonic start of the current outage
        self.count = 0
        self._mark = 0.0
        m.DB_UP.set(1)

    @property
    def failing(self) -> bool:
        return self.since is not None

    def tick(self) -> bool:
        """A write failed on a transient error; True when this starts an outage."""
        now = time.monotonic()
        if self.since is None:
            self.since = self._mark = now
            self.count += 1
            m.DB_UP.set(0)
            self.log.warning("database failing: keeping position, retrying with backoff")
            return True
        m.OUTAGE_SECONDS.inc(now - self._mark)
        self._mark = now
        return False

    def end(self) -> None:
        """A write succeeded."""
        if self.since is None:
            return
        now = time.monotonic()
        m.OUTAGE_SECONDS.inc(now - self._mark)
        self.log.info("database back", extra={"ctx": {"outage_s": round(now - self.since, 3)}})
        self.since = None
        m.DB_UP.set(1)


async def open_database(
    engine: AsyncEngine,
    store: Store,
    db: DbConfig,
    policy: RetryPolicy,
    burst: BurstLog,
    log: logging.Logger,
    stopping: asyncio.Event,
) -> tuple[dict[StreamKey, int], dict[str, PollContent]]:
    """Upgrade the schema and load the committed state, retrying while the database is down
    (only while it is *down*: a schema too new, bad data or a bug fails the start)."""

    async def attempt() -> tuple[dict[StreamKey, int], dict[str, PollContent]]:
        before, head = await upgrade(engine, db)
        state = await store.load_state()
        await store.warm()
        log.info(
            "database ready", extra={"ctx": {"url": redact(db.url), "schema_from": before, "schema": head}}
        )
        return state

    def verdict(exc: BaseException) -> Retry | None:
        if isinstance(exc, SchemaTooNew) or classify(exc) != "transient" or stopping.is_set():
            return None
        return Retry("connect")

    def note(e: RetryEvent) -> None:
        m.RETRIES.labels(e.reason).inc()
        burst.event(
            "open-db", "database unavailable at start; retrying", error=repr(e.error)[:300], attempt=e.attempt
        )

    return await retrying(attempt, policy, verdict, note)
