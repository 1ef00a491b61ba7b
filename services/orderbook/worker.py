"""The orderbook worker: the actor shell around :class:`Builder`.

Subscribes to snapshots (WS and REST resync), deltas, BookState, Gap, market
metadata/lifecycle (price ladders, closed markets) and trades (volume movers);
publishes ``bookstate.<t>``, ``tob.<t>`` and ``depth.<t>``; asks the connector (and
then the gap filler) for snapshots with ``ctl.<target>`` Control messages; answers
``book``, ``movers``, ``spreads``, ``stale`` and ``hashes`` on its control socket.

Redundant collectors (``[connector] collector``): each collector's stream is a line with a book
of its own, and per market one line is published (see .lines); ``hb.connector*`` tells which
collectors are alive. A failover is counted (kxfeed_orderbook_failovers_total) and logged.

CLI: ``kxfeed worker orderbook``; queries: ``kxfeed book TICKER``, ``kxfeed scan ...``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from shared.actor import Actor
from shared.book.builder import Builder
from shared.bus import Subscriber
from shared.collectors import line_of
from shared.commands.base import Command
from shared.commands.book import Book
from shared.commands.hashes import Hashes
from shared.commands.movers import Movers
from shared.commands.spreads import Spreads
from shared.commands.stale import Stale
from shared.commands.table import CommandHandler
from shared.config import OrderbookConfig
from shared.log import BurstLog
from shared.messages import BookState, Control, Heartbeat, TopOfBook

from . import queries
from .emit import Emitter
from .lines import Lines

#: Bus prefixes the builder reads.
PREFIXES = ["snap.", "delta.", "bookstate.", "gap.", "meta.", "lifecycle.", "trade."]
#: Kinds whose loss on the bus can leave a book wrong.
BOOK_KINDS = frozenset({"snap", "delta", "bookstate", "gap"})

DELTAS = Counter("kxfeed_orderbook_deltas_applied_total", "Book deltas applied")
SNAPSHOTS = Counter("kxfeed_orderbook_snapshots_applied_total", "Book snapshots applied", ["source"])
INVALIDATIONS = Counter("kxfeed_orderbook_invalidations_total", "Books that became INVALID", ["reason"])
IGNORED = Counter("kxfeed_orderbook_ignored_total", "Messages the builder did not apply", ["reason"])
UNCHECKED = Counter(
    "kxfeed_orderbook_unchecked_ticks_total", "Deltas applied without a tick check (price_ranges unknown)"
)
CLOSED = Counter("kxfeed_orderbook_closed_markets_total", "Books dropped because the market closed")
BAD_RANGES = Counter("kxfeed_orderbook_bad_price_ranges_total", "price_ranges that describe no ladder")
REQUESTS = Counter("kxfeed_orderbook_snapshot_requests_total", "Snapshot requests sent", ["target"])
FAILOVERS = Counter(
    "kxfeed_orderbook_failovers_total",
    "Markets switched to another collector's line",
    ["from_line", "to_line", "reason"],
)
COLLECTORS_DOWN = Counter(
    "kxfeed_orderbook_collectors_down_total", "Connectors whose heartbeats stopped or said disconnected"
)
BOOKS = Gauge("kxfeed_orderbook_books", "Books held", ["state"])
LATENCY = Histogram(
    "kxfeed_orderbook_latency_seconds",
    "Receive (ts_recv) to top-of-book published",
    # Fine around the 2 ms target (p99 at 1,000 msgs/s).
    buckets=(
        *(0.0001, 0.00025, 0.0005, 0.001, 0.0015, 0.002, 0.0025, 0.003, 0.004, 0.005),
        *(0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
    ),
)

#: Tops per publishing round whose receive -> publish latency is observed.
LATENCY_SAMPLE = 32

_PREFIX_METRICS: dict[str, Any] = {"snapshots.": SNAPSHOTS, "invalid.": INVALIDATIONS, "ignored.": IGNORED}
_PLAIN_METRICS: dict[str, Any] = {"closed_markets": CLOSED, "bad_price_ranges": BAD_RANGES}


class OrderbookWorker(Actor):
    name = "orderbook"

    async def setup(self) -> None:
        cfg = self.config.orderbook
        assert isinstance(cfg, OrderbookConfig)
        self.cfg = cfg

        def builder() -> Builder:
            return Builder(
                own_pub=self.name,
                resync_timeout_s=cfg.resync_timeout_s,
                resync_max_backoff_s=cfg.resync_max_backoff_s,
            )

        # A collector is gone after three heartbeats missed, as the poller's feed watch judges.
        self.builder = Lines(builder, heartbeat_timeout_s=3 * self.config.connector.heartbeat_interval_s)
        self.emitter = Emitter(
            self.builder, min_publish_interval=cfg.min_publish_interval, depth_levels=cfg.depth_levels
        )
        self.sub: Subscriber = self.subscriber(PREFIXES, on_drop=self._on_drop)
        self.hb_sub: Subscriber = self.subscriber(["hb.connector"])
        self._failovers = 0
        if cfg.max_batch > 0:
            self.sub.max_batch = cfg.max_batch
        self.burst = BurstLog(self.log)
        self.asks = BurstLog(self.log, level=logging.INFO)
        self._synced: dict[str, int] = {}
        self._synced_deltas = 0
        self._synced_unchecked = 0
        self._requests = {"connector": 0, "gapfill": 0}
        self._start = time.monotonic()
        self._asked_at: float | None = None
        BOOKS.labels("valid").set_function(lambda: float(self.builder.valid_count()))
        BOOKS.labels("invalid").set_function(lambda: float(len(self.builder.invalid)))

    async def main(self) -> None:
        self.spawn(self._timer(), name="timer")
        self.spawn(self._health(), name="collector-health")
        await self._consume()

    async def _consume(self) -> None:
        while not self.stopping.is_set():
            msgs = await self.sub.recv()
            now = time.monotonic()
            self.builder.apply_many(msgs, now)
            self._publish(now)

    async def teardown(self) -> None:
        self._sync_metrics()
        self.burst.flush()
        self.asks.flush()
        self.sub.close()
        self.hb_sub.close()

    # ---- publishing ------------------------------------------------------------------------
    def _publish(self, now: float) -> None:
        assert self.pub is not None
        out = self.emitter.flush(now)
        if out:
            self.pub.publish_many(out)
            wall = time.time_ns()
            sampled = 0
            for m in out:
                if type(m) is TopOfBook:
                    # A sample per round is enough for the distribution; observing every top
                    # of a busy round would cost as much as publishing it.
                    if m.ts_recv and sampled < LATENCY_SAMPLE:
                        LATENCY.observe(max(wall - m.ts_recv, 0) / 1e9)
                        sampled += 1
                elif type(m) is BookState and not m.valid:
                    # A settled market's book, or the connector asked to stop: a line, not an alarm.
                    log = self.asks if m.reason in ("closed", "shutdown") else self.burst
                    log.event(
                        f"invalid-{m.reason}",
                        "book INVALID",
                        ticker=m.ticker,
                        reason=m.reason,
                        conn=m.conn,
                        sid=m.sid,
                        xseq=m.xseq,
                    )
        self._log_failovers()
        self._request_due(now)

    def _log_failovers(self) -> None:
        for f in self.builder.take_failovers():
            self._failovers += 1
            FAILOVERS.labels(f.from_line or "-", f.to_line or "-", f.why).inc()
            self.log.warning(
                "failover: market follows another collector's line",
                extra={"ctx": {"ticker": f.ticker, "from": f.from_line, "to": f.to_line, "why": f.why}},
            )

    def _request_due(self, now: float) -> None:
        per_line, gapfill = self.builder.due_requests(now)
        for target, tickers in per_line.items():
            self._ask(target, tickers, "book invalid")
        if gapfill:
            self._ask("gapfill", gapfill, "book still invalid after a connector snapshot request")

    def _ask(self, target: str, tickers: list[str], reason: str) -> None:
        assert self.pub is not None
        self.pub.publish(
            Control(
                target=target, cmd="snapshot", tickers=sorted(tickers), reason=reason, ts_recv=time.time_ns()
            )
        )
        kind = "gapfill" if target == "gapfill" else "connector"
        self._requests[kind] += 1
        REQUESTS.labels(kind).inc()
        self.asks.event(
            f"ask-{target}",
            "snapshot requested",
            amount=len(tickers),
            target=target,
            tickers=len(tickers),
            first=min(tickers) if tickers else "*",
            reason=reason,
        )

    def _on_drop(self, pub: str, epoch: int, kind: str, first_missing: int, count: int) -> None:
        if kind not in BOOK_KINDS:
            return
        # A collector's loss breaks its own line only; anyone else's may touch every line.
        n = self.builder.invalidate_line(line_of(pub), "bus_drop", time.monotonic())
        self._publish(time.monotonic())
        self.log.warning(
            "book data lost on the bus: every book INVALID until re-snapshotted",
            extra={
                "ctx": {
                    "publisher": pub,
                    "kind": kind,
                    "lost": count,
                    "first_missing_seq": first_missing,
                    "books": n,
                }
            },
        )

    # ---- collector health: heartbeats in, dead collectors' books out ------------------------
    async def _health(self) -> None:
        while True:
            batch = await self.hb_sub.recv()
            now = time.monotonic()
            for m in batch:
                if type(m) is Heartbeat:
                    was_down = m.worker in self.builder.down
                    self.builder.heartbeat(m.worker, bool(m.counters.get("connected", 0)), now)
                    if m.worker in self.builder.down and not was_down:
                        self._collector_down(m.worker, "disconnected")
                    elif was_down and m.worker not in self.builder.down:
                        self.log.info("collector up again", extra={"ctx": {"connector": m.worker}})
            self._publish(now)

    def _collector_down(self, worker: str, why: str) -> None:
        COLLECTORS_DOWN.inc()
        self.log.warning(
            "collector down: its books are INVALID; its markets move to another collector's VALID book",
            extra={"ctx": {"connector": worker, "why": why}},
        )

    # ---- the timer: start-up request, coalesced tops, depth, movers samples, metrics ------
    async def _timer(self) -> None:
        cfg = self.cfg
        next_depth = time.monotonic() + cfg.depth_interval
        next_sample = next_touch = time.monotonic()
        while True:
            await asyncio.sleep(0.05)
            now = time.monotonic()
            if self._asked_at is None:
                self._ask_all(now)
            if not self.ready:
                self._check_ready(now)
            down = self.builder.check_health(now)
            for worker in down:
                self._collector_down(worker, "no heartbeat")
            if down:
                self._publish(now)
            if self.emitter.next_due():
                self._publish(now)
            elif self.builder.invalid:
                self._request_due(now)
            if cfg.depth_interval > 0 and now >= next_depth:
                next_depth = now + cfg.depth_interval
                depth = self.emitter.depth()
                if depth and self.pub is not None:
                    self.pub.publish_many(depth)
            if now >= next_sample:
                next_sample = now + cfg.movers_sample_s
                queries.sample(self.builder, now, cfg.movers_horizon_s)
            if now >= next_touch:
                next_touch = now + 1.0
                self.builder.touch(now)
            self._sync_metrics()

    def _ask_all(self, now: float) -> None:
        """Fresh snapshots of every market, once a connector listens (it may start after us)."""
        assert self.pub is not None
        if not self.pub.has_subscriber("ctl.connector"):
            return
        self._asked_at = now
        self.builder.hold_requests(now)
        self.pub.publish(
            Control(
                target="connector",
                cmd="snapshot",
                tickers=[],
                reason="orderbook start",
                ts_recv=time.time_ns(),
            )
        )
        self._requests["connector"] += 1
        REQUESTS.labels("connector").inc()
        self.log.info("asked the connector for snapshots of every market")

    def _check_ready(self, now: float) -> None:
        quiet = self.cfg.ready_quiet_s
        since = self._asked_at if self._asked_at is not None else self._start
        if now - since >= quiet and now - self.builder.last_new_book >= quiet and not self.builder.invalid:
            self.ready = True
            books = len(self.builder.books)
            self.log.info(
                "ready", extra={"ctx": {"books": books, "asked_connector": self._asked_at is not None}}
            )
            self.event("ready", detail=f"{books} books valid")

    def _sync_metrics(self) -> None:
        b = self.builder
        if b.deltas != self._synced_deltas:
            DELTAS.inc(b.deltas - self._synced_deltas)
            self._synced_deltas = b.deltas
        if b.unchecked != self._synced_unchecked:
            n = b.unchecked - self._synced_unchecked
            UNCHECKED.inc(n)
            self._synced_unchecked = b.unchecked
            self.burst.event("unchecked", "deltas applied without tick check: price_ranges unknown", amount=n)
        for key, value in b.counts.items():
            n = value - self._synced.get(key, 0)
            if not n:
                continue
            self._synced[key] = value
            for prefix, metric in _PREFIX_METRICS.items():
                if key.startswith(prefix):
                    metric.labels(key[len(prefix) :]).inc(n)
                    break
            else:
                if key in _PLAIN_METRICS:
                    _PLAIN_METRICS[key].inc(n)
            if key.startswith("ignored."):
                self.burst.event(key, "messages not applied", amount=n, reason=key[8:], total=value)
            elif key in _PLAIN_METRICS:
                # Markets close every day; malformed price ranges are a problem.
                log = self.asks if key == "closed_markets" else self.burst
                log.event(key, key.replace("_", " "), amount=n, total=value)

    # ---- queries ---------------------------------------------------------------------------
    def stats(self) -> dict[str, int]:
        b = self.builder
        return {
            "books": len(b.books),
            "valid": b.valid_count(),
            "invalid": len(b.invalid),
            "deltas_applied": b.deltas,
            "unchecked_ticks": b.unchecked,
            "snapshot_requests_connector": self._requests["connector"],
            "snapshot_requests_gapfill": self._requests["gapfill"],
            "closed_markets": len(b.closed),
            "lines": len(b.builders),
            "failovers": self._failovers,
            "collectors_down": len(b.down),
        }

    def commands(self) -> dict[type[Command], CommandHandler]:
        return {
            Book: self._on_book,
            Movers: self._on_movers,
            Spreads: self._on_spreads,
            Stale: self._on_stale,
            Hashes: self._on_hashes,
        }

    def _now(self) -> float:
        """The clock a query reads; touching the builder first ages its books to now."""
        now = time.monotonic()
        self.builder.touch(now)
        return now

    async def _on_book(self, cmd: Book) -> Any:
        now = self._now()
        out = queries.book(self.builder, cmd.ticker, cmd.depth, now)
        # Which collector's line the book is (its collector name; "" the unnamed one).
        out["line"] = self.builder.active_line(cmd.ticker)
        return out

    async def _on_movers(self, cmd: Movers) -> Any:
        now = self._now()
        return queries.movers(self.builder, now, top=cmd.top, window_s=cmd.window_s, by=cmd.by)

    async def _on_spreads(self, cmd: Spreads) -> Any:
        self._now()
        return queries.spreads(self.builder, top=cmd.top, order=cmd.order)

    async def _on_stale(self, cmd: Stale) -> Any:
        now = self._now()
        older = cmd.older_than_s if cmd.older_than_s is not None else self.cfg.stale_after_s
        return queries.stale(self.builder, now, older_than_s=older, top=cmd.top)

    async def _on_hashes(self, cmd: Hashes) -> dict[str, Any]:
        self._now()
        b = self.builder
        wanted = cmd.tickers or list(b.books)
        return {
            t: {"valid": bk.valid, "xseq": bk.xseq, "hash": f"{bk.hash & 0xFFFFFFFFFFFFFFFF:016x}"}
            for t in wanted
            if (bk := b.books.get(t)) is not None
        }


WORKER = OrderbookWorker
