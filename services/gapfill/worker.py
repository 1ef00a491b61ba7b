"""The gap filler worker: REST orderbooks for books the connector has not brought back.

  kxfeed worker gapfill

- Follows the connector's Gap (open / recovered) and BookState messages. A gap whose
  markets are not all back ``rest_after`` seconds after it opened gets REST orderbooks
  (``/markets/orderbooks``, 100 markets a call) for the markets still broken, published
  as resync snapshots (``snap.<t>``, source rest); the orderbook takes them for books
  that are INVALID. When that completes the gap, its "recovered" record is published
  with method ``rest`` (the connector's records are never repeated).
- Answers the orderbook's ``ctl.gapfill`` snapshot requests (books still INVALID after a
  connector request) the same way; the control socket takes ``snapshot {"tickers": [..]}``.
- Every ``audit_interval_s`` audits what the writer stored: sequence holes per
  subscription, explained or not by a recorded gap (metrics; ``kxfeed gaps`` shows them).
- Backfills trades the live channel may have missed (a trade gap, a disconnect, a connector
  restart, its own restart: ``<data_dir>/gapfill/<id>.trades.json`` holds where to resume)
  from ``/markets/trades``: published with source rest (see :mod:`.tradefill`).

Durable: snapshots, backfilled trades and gap records are journaled before they are published.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.actor import Actor
from shared.commands.base import BadArgument, Command
from shared.commands.gaps import Gaps
from shared.commands.snapshot import Snapshot, SnapshotReply
from shared.commands.table import CommandHandler
from shared.config import GapfillConfig
from shared.kalshi.client import make_client
from shared.kalshi.rest import TICKERS_PER_CALL, RestError, RestNotFound
from shared.kalshi.rest_models import MarketOrderbook
from shared.log import BurstLog
from shared.messages import BookSnapshot, BookState, Control, Gap, Message
from shared.store.audit import audit, database_exists
from shared.store.engine import make_engine
from shared.store.queries import stored_trade_ids
from shared.units import UnitError

from . import metrics as M
from .books import rest_snapshot
from .tracker import GapTracker
from .tradefill import TradeBackfill

_TICK_S = 0.05


class GapfillWorker(Actor):
    name = "gapfill"
    durable = True
    configured = False

    async def setup(self) -> None:
        gc = self.config.gapfill
        assert isinstance(gc, GapfillConfig)
        self.gc = gc
        self.rest, self.env = make_client(self.config, gc)
        self.tracker = GapTracker(gc.rest_after)
        self.requested: set[str] = set()
        self.fetched_at: dict[str, float] = {}
        self.sub = self.subscriber(["gap.", "bookstate.", "trade.", f"ctl.{self.name}"])
        self.burst = BurstLog(self.log)
        self.trades = TradeBackfill(
            self.rest, gc.trade_backfill_max_s, self.worker_id, self.burst, self._publish,
            state=Path(self.config.data_dir) / "gapfill" / f"{self.worker_id}.trades.json",
            stored=self._stored_trades,
        )  # fmt: skip
        self.trades.resume()
        self.engine: AsyncEngine | None = None
        self.counts = {"rest_repairs": 0, "rest_snapshots": 0, "rest_failures": 0, "requests": 0, "audits": 0}
        self.last_audit: dict[str, int] = {}
        M.OPEN_GAPS.set_function(lambda: len(self.tracker.open))
        self.configured = True
        self.ready = True

    async def main(self) -> None:
        self.spawn(self._bus_loop(), name="bus")
        self.spawn(self.trades.run(), name="trades")
        if self.gc.audit_interval_s > 0:
            self.spawn(self._audit_loop(), name="audit")
        await self._repair_loop()

    async def teardown(self) -> None:
        await self.trades.save(time.monotonic(), force=True)
        self.burst.flush()
        await self.rest.close()
        if self.engine is not None:
            await self.engine.dispose()
        self.sub.close()

    def stats(self) -> dict[str, int]:
        if not self.configured:
            return {}  # the control socket answers before setup has run
        return {
            **self.counts,
            **self.trades.counts,
            "open_gaps": len(self.tracker.open),
            "pending_markets": self.tracker.pending(),
            **{f"audit_{k}": v for k, v in self.last_audit.items()},
        }

    def commands(self) -> dict[type[Command], CommandHandler]:
        return {Snapshot: self._on_snapshot, Gaps: self._on_gaps}

    async def _on_snapshot(self, cmd: Snapshot) -> SnapshotReply:
        if not cmd.tickers:
            raise BadArgument("snapshot", "needs tickers: the gap filler repairs named markets", "tickers")
        return SnapshotReply(requested=self.request(list(cmd.tickers), "control"))

    async def _on_gaps(self, _: Gaps) -> list[dict[str, Any]]:
        now = time.monotonic()
        return [
            {
                "conn": t.gap.conn,
                "sid": t.gap.sid,
                "expected": t.gap.expected,
                "reason": t.gap.reason,
                "markets": len(t.gap.tickers),
                "pending": sorted(t.pending)[:50],
                "by_rest": len(t.by_rest),
                "age_s": round(now - t.seen, 3),
            }
            for t in self.tracker.open.values()
        ]

    # ---- requests --------------------------------------------------------------------------
    def request(self, tickers: list[str], source: str) -> list[str]:
        """Queue these markets for a REST fetch, unless fetched within ``refetch_after_s``."""
        M.REQUESTS.labels(source).inc()
        self.counts["requests"] += 1
        now = time.monotonic()
        fresh = [t for t in tickers if now - self.fetched_at.get(t, -1e9) >= self.gc.refetch_after_s]
        self.requested.update(fresh)
        return sorted(fresh)

    # ---- the bus ---------------------------------------------------------------------------
    async def _bus_loop(self) -> None:
        while True:
            msgs = await self.sub.recv()
            now = time.monotonic()
            out: list[Message] = []
            for m in msgs:
                self.trades.on_message(m, now)
                if isinstance(m, Gap):
                    self._gap(m, now)
                elif isinstance(m, BookState) and m.valid and m.pub.startswith("connector"):
                    for rec in self.tracker.restored(m.ticker, now, time.time_ns()):
                        self._closed(rec, out)
                elif isinstance(m, Control) and self._for_me(m):
                    self.request(list(m.tickers), "bus")
            if out and self.pub is not None:
                self.pub.publish_many(out)

    def _publish(self, msgs: list[Message]) -> None:
        if msgs and self.pub is not None:
            self.pub.publish_many(msgs)

    def _for_me(self, c: Control) -> bool:
        return c.target in (self.name, self.worker_id) and c.cmd == "snapshot" and bool(c.tickers)

    def _gap(self, g: Gap, now: float) -> None:
        if g.pub == self.worker_id:
            return  # our own record, echoed
        if g.status == "open":
            self.tracker.opened(g, now)
        elif self.tracker.recovered(g, now):
            M.GAPS.labels(g.method or "unknown").inc()
            if g.recovered_ms is not None and g.detected_ms:
                M.RECOVERY.labels(g.method or "unknown").observe(
                    max(0, g.recovered_ms - g.detected_ms) / 1000
                )

    def _closed(self, rec: Gap, out: list[Message]) -> None:
        """A gap REST helped repair is complete: its record, metrics, one log line."""
        out.append(rec)
        M.REST_REPAIRS.inc()
        M.GAPS.labels("rest").inc()
        self.counts["rest_repairs"] += 1
        duration = max(0, (rec.recovered_ms or 0) - rec.detected_ms) / 1000
        M.RECOVERY.labels("rest").observe(duration)
        self.burst.event(
            "rest-repair",
            "gap repaired from REST orderbooks",
            conn=rec.conn,
            sid=rec.sid,
            expected=rec.expected,
            markets=len(rec.tickers),
            seconds=round(duration, 3),
        )

    # ---- repair ----------------------------------------------------------------------------
    async def _repair_loop(self) -> None:
        while True:
            await asyncio.sleep(_TICK_S)
            now = time.monotonic()
            due = self.tracker.due(now)
            asked, self.requested = self.requested, set()
            tickers = sorted(set(due) | asked)
            if not tickers:
                continue
            try:
                snaps, gone = await self._fetch(tickers)
            except (RestError, OSError) as exc:
                M.REST_FAILURES.inc()
                self.counts["rest_failures"] += 1
                self.tracker.failed(time.monotonic())
                self.requested |= asked  # asked again on the next round
                self.burst.event("rest-failed", "REST orderbook fetch failed", error=str(exc)[:300])
                await asyncio.sleep(self.tracker.retry_s)
                continue
            now = time.monotonic()
            ts = time.time_ns()
            wanted, records = self.tracker.fetched([s.ticker for s in snaps], gone, now, ts)
            out: list[Message] = []
            for s in snaps:
                self.fetched_at[s.ticker] = now
                if s.ticker in wanted or s.ticker in asked:
                    out.append(s)
                    M.REST_BOOKS.labels("gap" if s.ticker in wanted else "request").inc()
            self.counts["rest_snapshots"] += len(out)
            for rec in records:
                self._closed(rec, out)
            if out and self.pub is not None:
                self.pub.publish_many(out)
            if len(self.fetched_at) > 100_000:
                cutoff = now - self.gc.refetch_after_s
                self.fetched_at = {t: at for t, at in self.fetched_at.items() if at >= cutoff}

    async def _fetch(self, tickers: list[str]) -> tuple[list[BookSnapshot], set[str]]:
        """REST books of these markets, and the markets Kalshi does not know (any more)."""
        books: list[MarketOrderbook] = []
        gone: set[str] = set()
        for i in range(0, len(tickers), TICKERS_PER_CALL):
            chunk = tickers[i : i + TICKERS_PER_CALL]
            try:
                books.extend(await self.rest.orderbooks(chunk))
            except RestNotFound:
                # One unknown market fails the whole call: find it market by market.
                for t in chunk:
                    try:
                        books.append(MarketOrderbook(t, await self.rest.orderbook(t)))
                    except RestNotFound:
                        gone.add(t)
        if gone:
            M.GONE.inc(len(gone))
            self.burst.event("gone", "markets unknown to REST: nothing to repair", tickers=sorted(gone)[:10])
        snaps = []
        for ob in books:
            try:
                snaps.append(rest_snapshot(ob, time.time_ns()))
            except UnitError as exc:
                M.BAD_BOOKS.inc()
                gone.add(ob.ticker)
                self.burst.event("bad-book", "REST orderbook unreadable", ticker=ob.ticker, error=str(exc))
        return snaps, gone

    async def _stored_trades(self, ids: list[str]) -> set[str]:
        if not database_exists(self.config.db):
            return set()
        if self.engine is None:
            self.engine = make_engine(self.config.db)
        return await stored_trade_ids(self.engine, ids)

    # ---- audit -----------------------------------------------------------------------------
    async def _audit_loop(self) -> None:
        # The first audit soon after start, so the metric exists; then every interval.
        await asyncio.sleep(min(5.0, self.gc.audit_interval_s))
        while True:
            await self.audit_once()
            await asyncio.sleep(self.gc.audit_interval_s)

    async def audit_once(self) -> bool:
        if not database_exists(self.config.db):
            self.burst.event("no-db", "no database yet: audit skipped", url=self.config.db.url)
            return False
        if self.engine is None:
            self.engine = make_engine(self.config.db)
        since = datetime.now(UTC) - timedelta(seconds=self.gc.audit_window_s)
        try:
            report = await audit(self.engine, since)
        except (SQLAlchemyError, OSError) as exc:
            M.AUDITS.labels("failed").inc()
            self.burst.event("audit-failed", "stored-sequence audit failed", error=str(exc)[:300])
            return False
        M.AUDITS.labels("ok").inc()
        self.counts["audits"] += 1
        unexplained = report.unexplained
        M.STORED_HOLES.labels("true").set(report.holes - unexplained)
        M.STORED_HOLES.labels("false").set(unexplained)
        M.STORED_MISSING.set(report.missing)
        M.AUDITED.set(len(report.subscriptions))
        before = self.last_audit.get("unexplained_holes", 0)
        self.last_audit = {
            "subscriptions": len(report.subscriptions),
            "holes": report.holes,
            "unexplained_holes": unexplained,
            "missing_seqs": report.missing,
        }
        if unexplained > before:
            self.log.warning(
                "stored sequences have holes no recorded gap explains",
                extra={
                    "ctx": {"unexplained": unexplained, "holes": report.holes, "since": since.isoformat()}
                },
            )
        return True


WORKER = GapfillWorker
