"""The market set this connector follows: discovered over REST, kept current by lifecycle.

Discovery resolves the config filters at start (and again after a reconnect when
it is old, or when lifecycle news may have been missed). Lifecycle frames then add
markets that are created or activated and match, and remove determined or settled
ones. The worker applies each :class:`Change` to the live connection.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, NamedTuple

import msgspec

from shared.kalshi.discovery import MarketFilter, SeriesCatalog, discover, resolve_market
from shared.kalshi.rest import RestClient, RestNotFound
from shared.kalshi.rest_models import Market
from shared.log import get_logger
from shared.messages import EventLifecycle, MarketLifecycle, MarketMeta

from .metrics import LIFECYCLE_CHANGES

#: Lifecycle events that end a market's trading / that may start a new one.
CLOSING = frozenset({"determined", "settled"})
OPENING = frozenset({"created", "activated"})
#: Lifecycle events that change what a MarketMeta says (its tick ladder, close time, names).
UPDATING = frozenset({"price_level_structure_updated", "close_date_updated", "metadata_updated"})


def updated_meta(meta: MarketMeta, m: MarketLifecycle) -> MarketMeta:
    """``meta`` with what the lifecycle event carries; a republished stale ladder would make
    every book of the market fail its tick check."""
    changes: dict[str, Any] = {"ts_recv": m.ts_recv}
    if m.price_ranges is not None:
        changes["price_ranges"] = m.price_ranges
    if m.close_ms is not None:
        changes["close_ms"] = m.close_ms
    if m.yes_sub_title is not None:
        changes["yes_sub_title"] = m.yes_sub_title
    for strike in ("strike_type", "floor_strike", "cap_strike"):  # metadata_updated
        if getattr(m, strike) is not None:
            changes[strike] = getattr(m, strike)
    candidate = msgspec.structs.replace(meta, **changes)
    same = all(getattr(candidate, k) == getattr(meta, k) for k in changes if k != "ts_recv")
    return meta if same else candidate


#: REST may answer 404 for a moment after "created": retry after these waits.
_NOT_YET_FOUND_WAITS = (0.2, 0.5, 1.0, 2.0)

_log = get_logger("connector.markets")


class Change(NamedTuple):
    kind: Literal["add", "remove", "update"]
    ticker: str
    meta: MarketMeta | None


class MarketSet:
    def __init__(
        self, rest: RestClient, filt: MarketFilter, sleep: Callable[[float], Awaitable[Any]]
    ) -> None:
        self.rest = rest
        self.filter = filt
        self.catalog = SeriesCatalog(rest)
        self.markets: dict[str, MarketMeta] = {}
        self.discovered_at = 0.0
        #: Lifecycle news may have been missed: discover again at the next chance.
        self.stale = False
        self._sleep = sleep

    def __len__(self) -> int:
        return len(self.markets)

    def __contains__(self, ticker: object) -> bool:
        return ticker in self.markets

    def tickers(self) -> list[str]:
        return sorted(self.markets)

    async def discover(self, *, initial: bool) -> tuple[list[str], list[str]]:
        """Resolve the filters now (raises RestError/OSError); returns (added, removed)."""
        found = await discover(self.rest, self.filter, self.catalog)
        added = sorted(set(found) - set(self.markets))
        removed = sorted(set(self.markets) - set(found))
        if not initial:
            LIFECYCLE_CHANGES.labels("added").inc(len(added))
            LIFECYCLE_CHANGES.labels("removed").inc(len(removed))
        self.markets = found
        self.discovered_at = time.monotonic()
        self.stale = False
        return added, removed

    def reject(self, tickers: list[str]) -> None:
        """Kalshi does not know these (error 16)."""
        for t in tickers:
            self.markets.pop(t, None)

    async def follow(self, m: MarketLifecycle | EventLifecycle) -> Change | None:
        """What a lifecycle message changes in the set (may look the market up over REST)."""
        if isinstance(m, EventLifecycle):
            self.catalog.learn_event(m.event_ticker, m.series_ticker, m.title)
            return None
        t = m.ticker
        known = self.markets.get(t)
        if known is not None and m.event_type in UPDATING:
            updated = updated_meta(known, m)
            if updated == known:
                return None
            self.markets[t] = updated
            LIFECYCLE_CHANGES.labels("updated").inc()
            return Change("update", t, updated)
        if m.event_type in CLOSING:
            if self.markets.pop(t, None) is None:
                return None
            LIFECYCLE_CHANGES.labels("removed").inc()
            return Change("remove", t, None)
        if m.event_type not in OPENING or t in self.markets or not self.filter.in_shard(t):
            return None
        market = await self._fetch(t)
        if market is None:
            return None
        meta = await resolve_market(self.catalog, self.filter, market)
        if meta is None or t in self.markets:
            return None
        self.markets[t] = meta
        LIFECYCLE_CHANGES.labels("added").inc()
        return Change("add", t, meta)

    async def _fetch(self, ticker: str) -> Market | None:
        for wait in _NOT_YET_FOUND_WAITS:
            try:
                return await self.rest.market(ticker)
            except RestNotFound:
                await self._sleep(wait)
        _log.warning("new market not found over REST; not added", extra={"ctx": {"ticker": ticker}})
        return None
