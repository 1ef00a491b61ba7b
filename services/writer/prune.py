"""The writer's prune loop: what is past its ``[db] retention`` goes, every ``[db]
prune_interval_s`` (and once at start), through :mod:`shared.store.retention`.

A pass that fails (the database down, a partition locked past the lock timeout, a bug)
is counted and logged, and the next pass tries again: pruning never stops storing. Each
pass is logged once, with what went per table and what failed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.config import DbConfig
from shared.store import retention
from shared.store.engine import is_sqlite

PRUNED_ROWS = Counter(
    "kxfeed_writer_pruned_rows_total", "Rows removed past their [db] retention, by table", ["table"]
)
PRUNED_PARTITIONS = Counter(
    "kxfeed_writer_pruned_partitions_total",
    "PostgreSQL partitions dropped past their [db] retention, by table",
    ["table"],
)
PRUNE_ERRORS = Counter(
    "kxfeed_writer_prune_errors_total",
    "Prunes of a table that failed (retried next pass); table '*': the pass could not start",
    ["table"],
)
PRUNE_PASSES = Counter("kxfeed_writer_prune_passes_total", "Prune passes run")

#: SQLite has one writer at a time: between two delete batches the writer's own batch, which
#: waits on the lock in SQLite's busy handler (it sleeps in steps of up to 100 ms), gets it.
SQLITE_PAUSE_S = 0.05


def _now() -> datetime:
    return datetime.now(UTC)


class Pruner:
    def __init__(
        self, engine: AsyncEngine, db: DbConfig, log: logging.Logger, clock: Callable[[], datetime] = _now
    ) -> None:
        self.engine = engine
        self.db = db
        self.log = log
        self.clock = clock
        self.pause_s = SQLITE_PAUSE_S if is_sqlite(engine) else 0.0

    async def run(self) -> None:
        """Prune now and every interval; returns at once when every kind is kept forever."""
        try:
            targets = retention.targets(self.db.retention)
        except retention.RetentionError as exc:
            PRUNE_ERRORS.labels("*").inc()
            self.log.error("retention: cannot prune, keeping everything", extra={"ctx": {"error": str(exc)}})
            return
        if not targets:
            self.log.info("retention: every kind is kept forever; nothing is pruned")
            return
        kept = {t.kind: self.db.retention.seconds()[t.kind] // 3600 for t in targets}
        self.log.info(
            "retention: pruning",
            extra={"ctx": {"hours": kept, "interval_s": self.db.prune_interval_s}},
        )
        while True:
            await self.pass_once(targets)
            await asyncio.sleep(self.db.prune_interval_s)

    async def pass_once(self, targets: list[retention.Target]) -> list[retention.Pruned]:
        """One pass over every table with a retention; never raises (but on cancellation)."""
        PRUNE_PASSES.inc()
        started = time.monotonic()
        try:
            results = await retention.prune(
                self.engine, targets, self.clock(), batch_rows=self.db.prune_batch_rows, pause_s=self.pause_s
            )
        except Exception as exc:  # the pass itself (not one table) failed: the next one retries
            PRUNE_ERRORS.labels("*").inc()
            self.log.warning(
                "prune pass failed; retried next pass", extra={"ctx": {"error": repr(exc)[:300]}}
            )
            return []
        for r in results:
            PRUNED_ROWS.labels(r.table).inc(r.rows)
            PRUNED_PARTITIONS.labels(r.table).inc(len(r.partitions))
            if r.error is not None:
                PRUNE_ERRORS.labels(r.table).inc()
        ctx = {
            "seconds": round(time.monotonic() - started, 3),
            "rows": {r.table: r.rows for r in results if r.rows},
            "partitions": {r.table: len(r.partitions) for r in results if r.partitions},
            "cutoffs": {r.table: r.cutoff.isoformat() for r in results},
        }
        failed = {r.table: r.error for r in results if r.error is not None}
        if failed:
            self.log.warning(
                "prune pass: some tables failed; retried next pass", extra={"ctx": {**ctx, "errors": failed}}
            )
        else:
            self.log.info("prune pass done", extra={"ctx": ctx})
        return results
