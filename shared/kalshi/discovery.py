"""Which markets this connector follows: config filters, shard selection, REST discovery.

:class:`MarketFilter` is pure (config in, yes/no out). :class:`SeriesCatalog` resolves
what a market needs for the filter and for its ``MarketMeta`` - series, category,
fees - over REST (``/series`` once, ``/events`` pages, single lookups for
stragglers) and caches it, so lifecycle-driven additions cost one or two requests.

Kalshi's Market object carries neither a series ticker nor a category: the
series comes from the market's event, the category from the series (the event's
own ``category`` is deprecated and only a fallback).
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from shared.config import ConnectorConfig
from shared.kalshi import parse
from shared.kalshi.rest import RestClient, RestNotFound
from shared.kalshi.rest_models import Event, Market, Series
from shared.log import get_logger
from shared.messages import MarketMeta
from shared.units import UnitError

#: Statuses of a market worth a book subscription (REST vocabulary).
LIVE_STATUSES = frozenset({"initialized", "inactive", "active", "open", "unopened", "paused"})
_TICKERS_PER_CALL = 100

_log = get_logger("connector.discovery")


def shard_of(ticker: str, count: int) -> int:
    """Stable across processes and restarts (Python's ``hash`` is salted per process)."""
    return zlib.crc32(ticker.encode()) % count


@dataclass(frozen=True)
class MarketFilter:
    series: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()  # casefolded
    tickers: frozenset[str] = frozenset()
    sports_only: bool = False
    shard_count: int = 1
    shard_index: int = 0

    @classmethod
    def from_config(cls, cfg: ConnectorConfig, shard_index: int | None = None) -> MarketFilter:
        index = cfg.shard_index if shard_index is None else shard_index
        if cfg.shard_count < 1 or not 0 <= index < cfg.shard_count:
            raise ValueError(f"shard {index} of {cfg.shard_count}: need 0 <= index < count")
        return cls(
            series=frozenset(cfg.series),
            categories=frozenset(c.casefold() for c in cfg.categories),
            tickers=frozenset(cfg.tickers),
            sports_only=cfg.sports_only,
            shard_count=cfg.shard_count,
            shard_index=index,
        )

    @property
    def explicit(self) -> bool:
        """Some filter narrows the set (otherwise: every open market)."""
        return bool(self.series or self.categories or self.tickers)

    def in_shard(self, ticker: str) -> bool:
        return self.shard_count == 1 or shard_of(ticker, self.shard_count) == self.shard_index

    def wants(self, ticker: str, series: str, category: str) -> bool:
        if not self.in_shard(ticker):
            return False
        if self.explicit and not (
            ticker in self.tickers or series in self.series or category.casefold() in self.categories
        ):
            return False
        return not self.sports_only or category.casefold() == "sports"


@dataclass
class EventInfo:
    series_ticker: str
    category: str
    title: str
    fee_type_override: str | None = None
    fee_ppm_override: int | None = None


def event_info(
    ev: Event, *, log: logging.Logger = _log, unreadable: Callable[[], object] | None = None
) -> EventInfo:
    """What discovery keeps of an event, including its fee overrides; an unreadable fee
    multiplier override is none, logged to ``log`` and told to ``unreadable`` (a metric)."""
    try:
        ppm = parse.fee_multiplier_ppm(bytes(ev.fee_multiplier_override))
    except UnitError:
        if unreadable is not None:
            unreadable()
        log.warning("event fee multiplier override unreadable", extra={"ctx": {"event": ev.event_ticker}})
        ppm = None
    return EventInfo(ev.series_ticker, ev.category, ev.title, ev.fee_type_override or None, ppm)


class SeriesCatalog:
    """Series and event facts, fetched once and cached."""

    def __init__(self, rest: RestClient) -> None:
        self.rest = rest
        self.series: dict[str, Series] = {}
        self.events: dict[str, EventInfo] = {}

    async def load_series(self) -> None:
        try:
            listed = await self.rest.series_list()
        except RestNotFound:
            return
        self.series.update((s.ticker, s) for s in listed)

    async def load_events(self, *, series_ticker: str | None = None) -> None:
        async for ev in self.rest.events(status="open", series_ticker=series_ticker):
            self.events[ev.event_ticker] = event_info(ev)

    def learn_event(self, event_ticker: str, series_ticker: str, title: str = "") -> None:
        """From an ``event_lifecycle`` frame: the series is known before any REST call."""
        known = self.events.get(event_ticker)
        self.events[event_ticker] = (
            EventInfo(series_ticker, known.category, title, known.fee_type_override, known.fee_ppm_override)
            if known
            else EventInfo(series_ticker, "", title)
        )

    async def event(self, event_ticker: str) -> EventInfo | None:
        info = self.events.get(event_ticker)
        if info is None or (not info.category and info.series_ticker not in self.series):
            try:
                ev = await self.rest.event(event_ticker)
            except RestNotFound:
                return info
            info = self.events[event_ticker] = event_info(ev)
        return info

    def category(self, info: EventInfo) -> str:
        s = self.series.get(info.series_ticker)
        return (s.category if s is not None and s.category else "") or info.category

    def meta(self, market: Market, info: EventInfo) -> MarketMeta:
        s = self.series.get(info.series_ticker)
        try:
            fee_type, ppm = parse.fee_terms(s, info.fee_type_override, info.fee_ppm_override)
        except UnitError:
            _log.warning("series fee multiplier unreadable", extra={"ctx": {"series": info.series_ticker}})
            fee_type, ppm = parse.fee_terms(None, info.fee_type_override, info.fee_ppm_override)
        return parse.market_meta(
            market,
            time.time_ns(),
            series_ticker=info.series_ticker,
            category=self.category(info),
            fee_type=fee_type,
            fee_multiplier=ppm,
            event_title=info.title,
        )


async def candidates(rest: RestClient, filt: MarketFilter) -> list[Market]:
    """The markets the filters could select, fetched with as few REST calls as the filters allow."""
    found: dict[str, Market] = {}
    if not filt.explicit or filt.categories:
        async for m in rest.markets(status="open"):
            found[m.ticker] = m
    else:
        for series in sorted(filt.series):
            async for m in rest.markets(status="open", series_ticker=series):
                found[m.ticker] = m
    wanted = sorted(t for t in filt.tickers if t not in found)
    for i in range(0, len(wanted), _TICKERS_PER_CALL):
        async for m in rest.markets(tickers=wanted[i : i + _TICKERS_PER_CALL]):
            found[m.ticker] = m
    return [m for m in found.values() if m.status in LIVE_STATUSES and filt.in_shard(m.ticker)]


async def discover(rest: RestClient, filt: MarketFilter, catalog: SeriesCatalog) -> dict[str, MarketMeta]:
    """Every market this connector should follow now, as MarketMeta by ticker."""
    await catalog.load_series()
    if filt.explicit and not filt.categories and filt.series and not filt.tickers:
        for series in sorted(filt.series):
            await catalog.load_events(series_ticker=series)
    else:
        await catalog.load_events()
    out: dict[str, MarketMeta] = {}
    for market in await candidates(rest, filt):
        meta = await resolve_market(catalog, filt, market)
        if meta is not None:
            out[market.ticker] = meta
    return out


async def resolve_market(catalog: SeriesCatalog, filt: MarketFilter, market: Market) -> MarketMeta | None:
    """MarketMeta for ``market`` if the filters want it, else None."""
    info = await catalog.event(market.event_ticker)
    if info is None:
        _log.warning("market's event not found; skipped", extra={"ctx": {"ticker": market.ticker}})
        return None
    if not filt.wants(market.ticker, info.series_ticker, catalog.category(info)):
        return None
    try:
        return catalog.meta(market, info)
    except UnitError as exc:
        _log.warning(
            "market metadata unreadable; skipped", extra={"ctx": {"ticker": market.ticker, "error": str(exc)}}
        )
        return None
