"""The poller worker: Kalshi REST in, journaled MarketMeta and PollSnapshot out.

  kxfeed worker poller

- Discovery (``[poller]`` filters; with the fallback on, the connector's filters too) at
  start and every ``discovery_interval_s``: a MarketMeta per market whose metadata is new
  or changed; markets that leave the universe get their final metadata (status).
- Every ``poll_interval_s``: the configured markets' top of book and stats as PollSnapshot
  (source poll), published only when changed.
- ``/exchange/status`` and ``/exchange/schedule`` every ``status_interval_s``: a feed that
  goes down inside maintenance or outside trading hours is counted as expected.
- Fallback: a market whose WebSocket feed has been down ``fallback_after`` seconds (its
  connector's heartbeat says disconnected or stopped, or the connector marked its book
  INVALID) is polled back to back at the budget's pace, published with ``fallback=True``;
  polling stops for each market as soon as its feed is healthy again.

Every request waits for this worker's share of the key's read budget (``rest_tier``,
``rest_budget_share``). Durable: frames are journaled before they are published, so the
writer can replay them. Control: ``markets``, ``fallback``, ``discover``, ``stats``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import time
from typing import Any

from shared.actor import Actor
from shared.backoff import Backoff
from shared.commands.base import Command
from shared.commands.discover import Discover
from shared.commands.fallback import Fallback as FallbackCommand
from shared.commands.markets import Markets
from shared.commands.table import CommandHandler
from shared.config import PollerConfig
from shared.kalshi.client import make_client
from shared.kalshi.discovery import LIVE_STATUSES, MarketFilter, candidates
from shared.kalshi.rest import RestError
from shared.log import BurstLog
from shared.messages import BookState, FeeUpdate, Heartbeat, Message
from shared.retry import RetryPolicy
from shared.units import UnitError

from . import metrics as M
from .fallback import PollFallback
from .feed import FeedHealth
from .polls import Published, poll_snapshot
from .schedule import ExchangeClock
from .universe import Universe, poller_filter

#: Unknown events met while polling: up to this many are looked up one by one; more
#: (a new slate of games) calls for a full discovery instead.
MAX_EVENT_LOOKUPS = 20


class PollerWorker(Actor):
    name = "poller"
    durable = True
    configured = False

    # ---- lifecycle -------------------------------------------------------------------------
    async def setup(self) -> None:
        pc = self.config.poller
        assert isinstance(pc, PollerConfig)
        self.pc = pc
        cc = self.config.connector
        self.rest, self.env = make_client(self.config, pc)
        self.own = poller_filter(pc)
        # The connector's market set, every shard of it: what the fallback stands in for.
        self.feed_filter = dataclasses.replace(MarketFilter.from_config(cc, 0), shard_count=1, shard_index=0)
        self.universe = Universe(self.rest, [self.own, self.feed_filter] if pc.fallback else [self.own])
        self.health = FeedHealth(
            cc.shard_count,
            timeout_s=pc.feed_timeout_s or 3 * cc.heartbeat_interval_s,
            fallback_after=pc.fallback_after,
            now=time.monotonic(),
            collectors=(cc.collector, *cc.peers),
        )
        self.clock = ExchangeClock()
        self.published = Published()
        self.own_list: list[str] = []
        self.fallback = PollFallback(
            enabled=pc.fallback,
            rest=self.rest,
            universe=self.universe,
            feed_filter=self.feed_filter,
            health=self.health,
            clock=self.clock,
            log=self.log,
            poll=self.changed_poll,
            publish=self.publish,
            failed=self.failed,
        )
        self.sub = self.subscriber(["hb.connector", "bookstate.", "fee."])
        self.burst = BurstLog(self.log)
        self.rediscover = asyncio.Event()
        self.counts = {"discoveries": 0, "meta_published": 0, "snapshots_published": 0, "rest_errors": 0}
        self.configured = True
        M.MARKETS.set_function(lambda: len(self.universe.markets))
        M.MAINTENANCE.set_function(lambda: float(self.clock.maintenance(dt.datetime.now(dt.UTC))))
        self.log.info(
            "poller configured",
            extra={
                "ctx": {
                    "env": self.env,
                    "rest": self.rest.base_url,
                    "tier": pc.rest_tier,
                    "reads_per_s": round(self.rest.bucket.requests_per_s, 2) if self.rest.bucket else None,
                    "fallback": pc.fallback,
                }
            },
        )

    async def main(self) -> None:
        # Ready = running; discovery is the work, not a precondition: a Kalshi REST outage at
        # start must not make the supervisor restart the poller over and over.
        self.ready = True
        self.spawn(self._bus_loop(), name="bus")
        self.spawn(self._status_loop(), name="status")
        # Runs with the fallback off too: it also watches the feeds (outage metrics).
        self.spawn(self.fallback.run(), name="fallback")
        await self._universe_loop()

    async def teardown(self) -> None:
        self.burst.flush()
        await self.rest.close()
        self.sub.close()

    def stats(self) -> dict[str, int]:
        if not self.configured:
            return {}  # the control socket answers before setup has run
        return {
            **self.counts,
            "markets": len(self.universe.markets),
            "polled_markets": len(self.own_list),
            "fallback_active": int(bool(self.fallback.markets)),
            "fallback_markets": len(self.fallback.markets),
            "feeds_up": len(self.health.up()),
        }

    def commands(self) -> dict[type[Command], CommandHandler]:
        return {Markets: self._on_markets, FallbackCommand: self._on_fallback, Discover: self._on_discover}

    async def _on_markets(self, _: Markets) -> dict[str, Any]:
        return {
            "universe": sorted(self.universe.markets),
            "polled": sorted(self.own_list),
            "feed": sorted(self.fallback.feed_markets),
        }

    async def _on_fallback(self, _: FallbackCommand) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "enabled": self.pc.fallback,
            "markets": sorted(self.fallback.markets),
            "feeds": {
                name: {
                    "up": link.down_since is None,
                    "connected": link.connected,
                    "heartbeat_age_s": round(now - link.last_hb, 3) if link.last_hb is not None else None,
                    "invalid_markets": len(link.markets_invalid),
                }
                for name, link in self.health.links.items()
            },
        }

    async def _on_discover(self, _: Discover) -> str:
        self.rediscover.set()
        return "discovering"

    # ---- helpers ---------------------------------------------------------------------------
    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.rediscover.wait(), max(0.0, seconds))

    def refresh(self) -> None:
        """The universe changed: which markets are ours to poll, which the connector's."""
        u = self.universe
        self.own_list = [t for t in u.markets if len(u.filters) == 1 or u.wanted_by(self.own, t)]
        self.fallback.refresh()

    def publish(self, msgs: list[Message]) -> None:
        if msgs and self.pub is not None:
            self.pub.publish_many(msgs)

    def failed(self, task: str, exc: BaseException) -> None:
        M.ERRORS.labels(task).inc()
        self.counts["rest_errors"] += 1
        self.burst.event(f"rest-{task}", "REST round failed", task=task, error=str(exc)[:300])

    def changed_meta(self, tickers: list[str], ts_recv: int, out: list[Message]) -> None:
        for t in tickers:
            market = self.universe.markets.get(t)
            if market is None:
                continue
            try:
                meta = self.universe.meta(market, ts_recv)
            except UnitError as exc:
                M.BAD_MARKETS.labels("meta").inc()
                self.burst.event("bad-meta", "market metadata unreadable", ticker=t, error=str(exc))
                continue
            if self.published.meta_changed(meta):
                out.append(meta)
                M.META.inc()
                self.counts["meta_published"] += 1

    def changed_poll(self, market: Any, ts_recv: int, fallback: bool, out: list[Message]) -> None:
        if not fallback and market.ticker in self.fallback.markets:
            return  # the fallback polls it, faster: a periodic copy would only flip the flag
        mode = "fallback" if fallback else "periodic"
        try:
            snap = poll_snapshot(market, ts_recv, fallback=fallback)
        except UnitError as exc:
            M.BAD_MARKETS.labels("snapshot").inc()
            self.burst.event("bad-poll", "market snapshot unreadable", ticker=market.ticker, error=str(exc))
            return
        if self.published.poll_changed(snap):
            out.append(snap)
            M.POLLS.labels(mode).inc()
            self.counts["snapshots_published"] += 1
        else:
            M.UNCHANGED.labels(mode).inc()

    # ---- discovery and periodic snapshots --------------------------------------------------
    async def _universe_loop(self) -> None:
        pc = self.pc
        # A timetable, not a retry-until-done: a failed discovery only brings the next one forward.
        retry = RetryPolicy(Backoff(1.0, 60.0))
        next_discovery = next_poll = 0.0
        while not self.stopping.is_set():
            now = time.monotonic()
            if now >= next_discovery or self.rediscover.is_set():
                self.rediscover.clear()
                ok = await self._discover()
                next_discovery = time.monotonic() + (pc.discovery_interval_s if ok else retry.next_delay())
                if ok:
                    retry.succeeded()
            if pc.poll_interval_s > 0 and self.universe.discovered_at and time.monotonic() >= next_poll:
                if not await self._poll_round():
                    self.rediscover.set()
                next_poll = time.monotonic() + pc.poll_interval_s
            wake = min(next_discovery, next_poll) if pc.poll_interval_s > 0 else next_discovery
            await self._sleep(wake - time.monotonic())

    async def _discover(self) -> bool:
        started = time.monotonic()
        first = not self.universe.discovered_at
        try:
            added, removed = await self.universe.discover()
        except (RestError, OSError) as exc:
            M.DISCOVERIES.labels("failed").inc()
            self.failed("discovery", exc)
            return False
        took = time.monotonic() - started
        M.DISCOVERIES.labels("ok").inc()
        M.DISCOVERY_SECONDS.observe(took)
        self.counts["discoveries"] += 1
        if not first:
            M.MARKET_CHANGES.labels("added").inc(len(added))
            M.MARKET_CHANGES.labels("removed").inc(len(removed))
        out: list[Message] = []
        ts = time.time_ns()
        self.changed_meta(list(self.universe.markets), ts, out)
        if removed:
            await self._retire(removed, ts, out)
        self.publish(out)
        self.refresh()
        self.health.forget(set(self.universe.markets))
        self.log.info(
            "markets discovered",
            extra={
                "ctx": {
                    "markets": len(self.universe.markets),
                    "added": len(added),
                    "removed": len(removed),
                    "seconds": round(took, 3),
                    "meta_published": len(out),
                }
            },
        )
        return True

    async def _retire(self, tickers: list[str], ts_recv: int, out: list[Message]) -> None:
        """Markets that left the universe: publish their final metadata (e.g. status closed)."""
        try:
            gone = await self.universe.fetch(tickers)
        except (RestError, OSError) as exc:
            self.failed("retire", exc)
            gone = []
        for market in gone:
            if market.event_ticker in self.universe.events:
                self.universe.markets[market.ticker] = market
                self.changed_meta([market.ticker], ts_recv, out)
                self.changed_poll(market, ts_recv, False, out)
                del self.universe.markets[market.ticker]
        for t in tickers:
            self.published.forget(t)

    async def _poll_round(self) -> bool:
        """One snapshot round of the configured markets; False when discovery should run again."""
        try:
            markets = await candidates(self.rest, self.own)
            added, complete = await self.universe.admit(markets, max_lookups=MAX_EVENT_LOOKUPS)
        except (RestError, OSError) as exc:
            self.failed("poll", exc)
            return True
        if added:
            M.MARKET_CHANGES.labels("added").inc(len(added))
            self.refresh()
        ts = time.time_ns()
        out: list[Message] = []
        seen = {m.ticker: m for m in markets}
        own = self.own_list
        for t in own:
            m = seen.get(t)
            if m is not None:
                self.universe.markets[t] = m
                self.changed_meta([t], ts, out)
                self.changed_poll(m, ts, False, out)
        missing = [t for t in own if t not in seen]
        if missing:
            try:
                fetched = await self.universe.fetch(missing)
            except (RestError, OSError) as exc:
                self.failed("poll", exc)
                fetched = []
                missing = []
            # Markets REST no longer lists at all, and those it lists closed, leave the universe.
            left = sorted(set(missing) - {m.ticker for m in fetched})
            for m in fetched:
                self.universe.markets[m.ticker] = m
                self.changed_meta([m.ticker], ts, out)
                self.changed_poll(m, ts, False, out)
                if m.status not in LIVE_STATUSES:
                    left.append(m.ticker)
            for t in left:
                del self.universe.markets[t]
                self.published.forget(t)
            if left:
                M.MARKET_CHANGES.labels("removed").inc(len(left))
                self.refresh()
        self.publish(out)
        return complete

    # ---- exchange status -------------------------------------------------------------------
    async def _status_loop(self) -> None:
        while True:
            try:
                status = await self.rest.exchange_status()
                schedule = await self.rest.exchange_schedule()
            except (RestError, OSError) as exc:
                self.failed("status", exc)
            else:
                was = self.clock.maintenance(dt.datetime.now(dt.UTC))
                self.clock.status, self.clock.schedule = status, schedule
                M.EXCHANGE_ACTIVE.set(int(status.exchange_active))
                M.TRADING_ACTIVE.set(int(status.trading_active))
                now_maint = self.clock.maintenance(dt.datetime.now(dt.UTC))
                if now_maint != was:
                    self.log.info(
                        "exchange maintenance " + ("began" if now_maint else "ended"),
                        extra={"ctx": {"resume": status.exchange_estimated_resume_time}},
                    )
            await asyncio.sleep(self.pc.status_interval_s)

    # ---- the bus ---------------------------------------------------------------------------
    async def _bus_loop(self) -> None:
        while True:
            msgs = await self.sub.recv()
            now = time.monotonic()
            fees: list[str] = []
            for m in msgs:
                if isinstance(m, Heartbeat):
                    self.health.heartbeat(m, now)
                elif isinstance(m, BookState):
                    self.health.book_state(m, now)
                elif isinstance(m, FeeUpdate):
                    fees.extend(self.universe.apply_fee_update(m))
            if fees:
                out: list[Message] = []
                self.changed_meta(fees, time.time_ns(), out)
                self.publish(out)


WORKER = PollerWorker
