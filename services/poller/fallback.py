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
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from shared.backoff import Backoff
from shared.kalshi.discovery import MarketFilter
from shared.kalshi.rest import TICKERS_PER_CALL, RestClient, RestError
from shared.messages import Message
from shared.retry import RetryPolicy

from . import metrics as M
from .feed import FeedHealth
from .schedule import ExchangeClock
from .universe import Universe

TICK_S = 0.2
PAGE = 1000


#: ``poll(market, ts_recv, fallback, out)``: the worker's change filter for one polled market.
Poll = Callable[[Any, int, bool, list[Message]], None]


class PollFallback:
    """Given its collaborators by the poller worker (no back reference to the worker):
    ``poll`` appends a changed snapshot to ``out``, ``publish`` sends, ``failed`` counts and
    logs a failed REST round."""

    def __init__(
        self,
        *,
        enabled: bool,
        rest: RestClient,
        universe: Universe,
        feed_filter: MarketFilter,
        health: FeedHealth,
        clock: ExchangeClock,
        log: logging.Logger,
        poll: Poll,
        publish: Callable[[list[Message]], None],
        failed: Callable[[str, BaseException], None],
    ) -> None:
        self.enabled = enabled
        self.rest = rest
        self.universe = universe
        self.feed_filter = feed_filter
        self.health = health
        self.clock = clock
        self.log = log
        self._poll = poll
        self._publish = publish
        self._failed = failed
        #: Markets the connector(s) follow, as far as the universe knows them.
        self.feed_markets: list[str] = []
        #: Markets being polled now (due).
        self.markets: set[str] = set()
        self.retry = RetryPolicy(Backoff(0.5, 30.0))
        for name in health.links:
            M.FEED_UP.labels(name).set(0)

    def refresh(self) -> None:
        """The universe changed: recompute the connector's market set."""
        if not self.enabled:
            return
        u = self.universe
        self.feed_markets = [t for t in u.markets if u.wanted_by(self.feed_filter, t)]

    def due(self) -> set[str]:
        now = time.monotonic()
        for name, up in self.health.tick(now):
            self._feed_changed(name, up)
        due = set(self.health.due(self.feed_markets, now))
        if bool(due) != bool(self.markets):
            on = bool(due)
            M.FALLBACK_SWITCHES.labels("on" if on else "off").inc()
            M.FALLBACK_ACTIVE.set(int(on))
            log = self.log.warning if on else self.log.info
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
            self.log.info("connector feed up", extra={"ctx": {"connector": name}})
            return
        expected = self.clock.expected_outage(dt.datetime.now(dt.UTC))
        M.FEED_OUTAGES.labels("true" if expected else "false").inc()
        log = self.log.info if expected else self.log.warning
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
                self.retry.succeeded()
            except (RestError, OSError) as exc:
                self._failed("fallback", exc)
                await self.retry.pause()

    def _by_pages(self, due: set[str]) -> bool:
        total = self.universe.open_total
        return total is not None and math.ceil(total / PAGE) < math.ceil(len(due) / TICKERS_PER_CALL)

    async def _sweep(self, due: set[str]) -> None:
        rest = self.rest
        out: list[Message] = []
        if self._by_pages(due):
            n = 0
            async for m in rest.markets(status="open", limit=PAGE):
                if m.ticker in due:
                    self._poll(m, time.time_ns(), True, out)
                n += 1
                if n % PAGE == 0:
                    self._publish(out)
                    out = []
                    due = self.due()
                    if not due:
                        return
            self._publish(out)
            return
        pending = sorted(due)
        for i in range(0, len(pending), TICKERS_PER_CALL):
            chunk = [t for t in pending[i : i + TICKERS_PER_CALL] if t in due]
            if not chunk:
                continue
            async for m in rest.markets(tickers=chunk):
                self._poll(m, time.time_ns(), True, out)
            self._publish(out)
            out = []
            due = self.due()
            if not due:
                return
