"""Keeping the connector's market set current: discovery over REST, lifecycle news followed.

Discovery runs at start (until it succeeds), again on reconnect when the set may be stale,
and at once after a gap on the lifecycle channel (a lost status change or fee override: the
REST reconcile, retried with backoff until it succeeds, then the Gap published "recovered" with
method ``rediscover``); between, each market/event lifecycle frame the session hands on may
add, update or remove one market, and the live session's subscriptions follow.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from shared.backoff import Backoff
from shared.config import ConnectorConfig
from shared.gaps import closing_record
from shared.kalshi.rest import RestAuthError, RestError
from shared.messages import EventLifecycle, Gap, MarketLifecycle, Message
from shared.retry import Retry, RetryPolicy

from .marketset import MarketSet
from .metrics import DISCOVERY_FAILURES
from .session import Session
from .validity import Recovery


class MarketUpkeep:
    """Owned by :class:`~services.connector.worker.ConnectorWorker` and called by it. Its
    collaborators are handed in: the market set and the recovery bookkeeping it keeps current,
    ``session`` (the live session, or None between connections), ``publish`` (messages to the
    bus) and ``flush`` (a session's output and commands onward)."""

    def __init__(
        self,
        *,
        cc: ConnectorConfig,
        markets: MarketSet,
        recovery: Recovery,
        session: Callable[[], Session | None],
        stopping: asyncio.Event,
        log: logging.Logger,
        sleep: Callable[[float], Awaitable[None]],
        publish: Callable[[list[Message]], None],
        flush: Callable[[Session], None],
    ) -> None:
        self.cc = cc
        self.markets = markets
        self.recovery = recovery
        self._session = session
        self.stopping = stopping
        self.log = log
        self._sleep = sleep
        self._publish = publish
        self._flush = flush
        #: Lifecycle news from the live session, followed one at a time.
        self.lifeq: asyncio.Queue[MarketLifecycle | EventLifecycle] = asyncio.Queue()
        self.auth_refused = False
        #: Lifecycle gaps waiting for the REST reconcile that recovers them.
        self.unreconciled: list[Gap] = []
        self._reconcile = asyncio.Event()
        #: One discovery at a time (the reconcile and a reconnect can both want one).
        self._discovering = asyncio.Lock()

    # ---- discovery -------------------------------------------------------------------------
    async def discover_until_done(self) -> None:
        # discover_once counts and logs each failure itself; the policy only paces the next try.
        policy = RetryPolicy(Backoff(self.cc.backoff_initial_s, self.cc.backoff_max_s), sleep=self._sleep)
        while not self.stopping.is_set():
            if await self.discover_once(initial=True):
                return
            await policy.pause(Retry("auth", self.cc.auth_backoff_s) if self.auth_refused else None)

    async def discover_once(self, *, initial: bool) -> bool:
        async with self._discovering:
            return await self._discover(initial=initial)

    async def _discover(self, *, initial: bool) -> bool:
        self.auth_refused = False
        try:
            added, removed = await self.markets.discover(initial=initial)
        except (RestError, OSError) as exc:
            DISCOVERY_FAILURES.inc()
            self.auth_refused = isinstance(exc, RestAuthError)
            self.log.warning(
                "market discovery failed", extra={"ctx": {"error": str(exc), "initial": initial}}
            )
            return False
        msgs: list[Message] = list(self.markets.markets.values())
        if removed:  # nothing will repair their books now; stop counting them as broken
            self.recovery.forget(removed, time.monotonic(), time.time_ns(), msgs)
        self._publish(msgs)
        s = self._session()
        if s is not None and (added or removed):  # found mid-connection: the subscriptions follow
            if added:
                s.add_markets(added, time.monotonic())
            if removed:
                s.remove_markets(removed, time.monotonic(), time.time_ns())
            self._flush(s)
        self.log.info(
            "market set discovered",
            extra={"ctx": {"markets": len(self.markets), "added": len(added), "removed": len(removed)}},
        )
        return True

    # ---- lifecycle gaps --------------------------------------------------------------------
    def reconcile(self, gaps: list[Gap]) -> None:
        """Lifecycle frames were lost: re-read the set over REST now (see :meth:`reconcile_loop`)."""
        self.unreconciled.extend(gaps)
        self._reconcile.set()

    async def reconcile_loop(self) -> None:
        policy = RetryPolicy(Backoff(self.cc.backoff_initial_s, self.cc.backoff_max_s), sleep=self._sleep)
        while True:
            await self._reconcile.wait()
            self._reconcile.clear()
            gaps, self.unreconciled = self.unreconciled, []
            while not await self.discover_once(initial=False):  # each failure counted and logged
                await policy.pause(Retry("auth", self.cc.auth_backoff_s) if self.auth_refused else None)
            policy.succeeded()
            ns = time.time_ns()
            self._publish([closing_record(g, "rediscover", ns, tickers=[]) for g in gaps])
            self.log.info(
                "lifecycle gaps recovered by re-discovery",
                extra={"ctx": {"gaps": len(gaps), "markets": len(self.markets)}},
            )

    # ---- lifecycle news --------------------------------------------------------------------
    async def lifecycle_loop(self) -> None:
        while True:
            m = await self.lifeq.get()
            try:
                change = await self.markets.follow(m)
            except (RestError, OSError) as exc:
                self.markets.stale = True
                self.log.warning(
                    "could not follow a lifecycle event; the market set will be re-discovered",
                    extra={"ctx": {"error": str(exc)}},
                )
                continue
            if change is None:
                continue
            s = self._session()
            if change.kind == "update":
                assert change.meta is not None
                self._publish([change.meta])
            elif change.kind == "add":
                assert change.meta is not None
                self._publish([change.meta])
                if s is not None:
                    s.add_markets([change.ticker], time.monotonic())
            elif s is not None:
                s.remove_markets([change.ticker], time.monotonic(), time.time_ns())
            if s is not None:
                self._flush(s)
            self.log.info(
                "market set changed", extra={"ctx": {"change": change.kind, "ticker": change.ticker}}
            )
