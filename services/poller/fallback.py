"""Fallback polling: top of book for the markets whose WebSocket feed is down.

:class:`~services.poller.feed.FeedHealth` decides which markets are due; this loop
polls them back to back, each request waiting for the budget, so it runs exactly as
fast as the budget allows and no faster. Between requests it asks again, so a market
whose feed comes back stops being polled within one request. Few markets are polled
by ticker (``/markets?tickers=``, 100 a call); when the whole open exchange is cheaper
to page through (1,000 a call), it pages instead.

Connector feeds going down are counted here too, labelled expected (inside a
maintenance window or outside trading hours) or not.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import time
from typing import TYPE_CHECKING

from shared.backoff import Backoff
from shared.kalshi.rest import TICKERS_PER_CALL, RestError
from shared.messages import Message

from . import metrics as M

if TYPE_CHECKING:
    from .worker import PollerWorker

TICK_S = 0.2
PAGE = 1000


class Fallback:
    def __init__(self, worker: PollerWorker) -> None:
        self.w = worker
        #: Markets the connector(s) follow, as far as the universe knows them.
        self.feed_markets: list[str] = []
        #: Markets being polled now (due).
        self.markets: set[str] = set()
        self.backoff = Backoff(0.5, 30.0)
        for name in worker.health.links:
            M.FEED_UP.labels(name).set(0)

    def refresh(self) -> None:
        """The universe changed: recompute the connector's market set."""
        if not self.w.pc.fallback:
            return
        u = self.w.universe
        self.feed_markets = [t for t in u.markets if u.wanted_by(self.w.feed_filter, t)]

    def due(self) -> set[str]:
        now = time.monotonic()
        for name, up in self.w.health.tick(now):
            self._feed_changed(name, up)
        due = set(self.w.health.due(self.feed_markets, now))
        if bool(due) != bool(self.markets):
            on = bool(due)
            M.FALLBACK_SWITCHES.labels("on" if on else "off").inc()
            M.FALLBACK_ACTIVE.set(int(on))
            log = self.w.log.warning if on else self.w.log.info
            log(
                "fallback polling " + ("on: the WebSocket feed is down" if on else "off: the feed is back"),
                extra={"ctx": {"markets": len(due if on else self.markets)}},
            )
        self.markets = due
        M.FALLBACK_MARKETS.set(len(due))
        return due

    def _feed_changed(self, name: str, up: bool) -> None:
        M.FEED_UP.labels(name).set(int(up))
        if up:
            self.w.log.info("connector feed up", extra={"ctx": {"connector": name}})
            return
        expected = self.w.clock.expected_outage(dt.datetime.now(dt.UTC))
        M.FEED_OUTAGES.labels("true" if expected else "false").inc()
        log = self.w.log.info if expected else self.w.log.warning
        log(
            "connector feed down" + (" (expected: maintenance or outside trading hours)" if expected else ""),
            extra={"ctx": {"connector": name, "expected": expected}},
        )

    async def run(self) -> None:
        while True:
            due = self.due()
            if not due:
                await asyncio.sleep(TICK_S)
                continue
            try:
                await self._sweep(due)
                self.backoff.attempt = 0
            except (RestError, OSError) as exc:
                self.w.failed("fallback", exc)
                await asyncio.sleep(self.backoff.delay())

    def _by_pages(self, due: set[str]) -> bool:
        total = self.w.universe.open_total
        return total is not None and math.ceil(total / PAGE) < math.ceil(len(due) / TICKERS_PER_CALL)

    async def _sweep(self, due: set[str]) -> None:
        rest = self.w.rest
        out: list[Message] = []
        if self._by_pages(due):
            n = 0
            async for m in rest.markets(status="open", limit=PAGE):
                if m.ticker in due:
                    self.w.changed_poll(m, time.time_ns(), True, out)
                n += 1
                if n % PAGE == 0:
                    self.w.publish(out)
                    out = []
                    due = self.due()
                    if not due:
                        return
            self.w.publish(out)
            return
        pending = sorted(due)
        for i in range(0, len(pending), TICKERS_PER_CALL):
            chunk = [t for t in pending[i : i + TICKERS_PER_CALL] if t in due]
            if not chunk:
                continue
            async for m in rest.markets(tickers=chunk):
                self.w.changed_poll(m, time.time_ns(), True, out)
            self.w.publish(out)
            out = []
            due = self.due()
            if not due:
                return
