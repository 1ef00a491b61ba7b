"""The market universe over REST: which markets the filters select, and their metadata.

Discovery reads ``/series`` once (category, fee type and multiplier per series), then
``/events?with_nested_markets=true`` pages, one series at a time when the filters name
few series, else one sweep of every open event; explicit tickers the events did not
bring come from ``/markets?tickers=`` (100 a call) and their events from
``/events/{ticker}``. Kalshi's Market carries neither series nor category: the series
comes from the market's event, the category from the series (the event's own is a
deprecated fallback). Fees: the series' type and multiplier unless the event overrides
them (``fee_type_override`` / ``fee_multiplier_override``, live via ``event_fee_update``).

Several filters may share one universe (the poller's own, and the connector's for the
fallback); a market is in it when any filter wants it.
"""

from __future__ import annotations

import time

from shared.config import PollerConfig
from shared.kalshi import parse
from shared.kalshi.discovery import LIVE_STATUSES, EventInfo, MarketFilter, event_info
from shared.kalshi.rest import TICKERS_PER_CALL, RestClient, RestNotFound
from shared.kalshi.rest_models import Event, Market, Series
from shared.log import get_logger
from shared.messages import FeeUpdate, MarketMeta
from shared.units import UnitError

from .metrics import BAD_MARKETS

#: Kalshi's game-winner series per sport (see kalshi-protocol.md section 8).
GAME_WINNER_SERIES = (
    "KXNFLGAME",
    "KXNBAGAME",
    "KXMLBGAME",
    "KXNHLGAME",
    "KXWNBAGAME",
    "KXNCAAFGAME",
    "KXNCAAMBGAME",
    "KXEPLGAME",
    "KXMLSGAME",
    "KXATPMATCH",
    "KXWTAMATCH",
    "KXUFCFIGHT",
)
#: Above this many selected series, one sweep of every open event costs fewer calls.
PER_SERIES_LIMIT = 20

_log = get_logger("poller.universe")


def poller_filter(cfg: PollerConfig) -> MarketFilter:
    series = set(cfg.series) | (set(GAME_WINNER_SERIES) if cfg.game_winners else set())
    return MarketFilter(
        series=frozenset(series),
        categories=frozenset(c.casefold() for c in cfg.categories),
        tickers=frozenset(cfg.tickers),
        sports_only=cfg.sports_only,
    )


def event_facts(ev: Event) -> EventInfo:
    return event_info(ev, log=_log, unreadable=lambda: BAD_MARKETS.labels("fee_override").inc())


class Universe:
    def __init__(self, rest: RestClient, filters: list[MarketFilter]) -> None:
        self.rest = rest
        self.filters = filters
        self.series: dict[str, Series] = {}
        self.events: dict[str, EventInfo] = {}
        #: ticker -> the latest REST Market of every market some filter wants.
        self.markets: dict[str, Market] = {}
        #: Open markets on the exchange, when the last discovery swept them all (else None).
        self.open_total: int | None = None
        self.discovered_at = 0.0

    # ---- facts -----------------------------------------------------------------------------
    def category(self, facts: EventInfo) -> str:
        s = self.series.get(facts.series_ticker)
        return (s.category if s is not None and s.category else "") or facts.category

    def wanted_by(self, filt: MarketFilter, ticker: str) -> bool:
        """``filt`` wants this market (it must be in the universe: its event is known)."""
        market = self.markets.get(ticker)
        facts = self.events.get(market.event_ticker) if market is not None else None
        return facts is not None and filt.wants(ticker, facts.series_ticker, self.category(facts))

    def _wanted(self, market: Market) -> bool:
        facts = self.events.get(market.event_ticker)
        if facts is None or market.status not in LIVE_STATUSES:
            return False
        category = self.category(facts)
        return any(f.wants(market.ticker, facts.series_ticker, category) for f in self.filters)

    def meta(self, market: Market, ts_recv: int) -> MarketMeta:
        """MarketMeta of a universe market (raises UnitError on unreadable fields)."""
        facts = self.events[market.event_ticker]
        s = self.series.get(facts.series_ticker)
        try:
            fee_type, ppm = parse.fee_terms(s, facts.fee_type_override, facts.fee_ppm_override)
        except UnitError:
            BAD_MARKETS.labels("fee_multiplier").inc()
            _log.warning("series fee multiplier unreadable", extra={"ctx": {"series": facts.series_ticker}})
            fee_type, ppm = parse.fee_terms(None, facts.fee_type_override, facts.fee_ppm_override)
        return parse.market_meta(
            market,
            ts_recv,
            series_ticker=facts.series_ticker,
            category=self.category(facts),
            fee_type=fee_type,
            fee_multiplier=ppm,
            event_title=facts.title,
        )

    def apply_fee_update(self, m: FeeUpdate) -> list[str]:
        """An ``event_fee_update``: the markets whose metadata it changes."""
        facts = self.events.get(m.event_ticker)
        if facts is None:
            return []
        self.events[m.event_ticker] = EventInfo(
            facts.series_ticker,
            facts.category,
            facts.title,
            m.fee_type_override,
            m.fee_multiplier_ppm_override,
        )
        return sorted(t for t, mk in self.markets.items() if mk.event_ticker == m.event_ticker)

    # ---- discovery -------------------------------------------------------------------------
    async def discover(self) -> tuple[list[str], list[str]]:
        """Resolve the filters now (raises RestError/OSError); returns (added, removed)."""
        listed = await self.rest.series_list()
        self.series = {s.ticker: s for s in listed}
        series, sweep, tickers = self._plan()
        found: dict[str, Market] = {}
        if sweep:
            total = 0
            async for ev in self.rest.events(status="open", with_nested_markets=True):
                total += self._take_event(ev, found)
            self.open_total = total
        else:
            for s in sorted(series):
                async for ev in self.rest.events(status="open", series_ticker=s, with_nested_markets=True):
                    self._take_event(ev, found)
        missing = sorted(t for t in tickers if t not in found)
        for market in await self.fetch(missing):
            if await self.learn_event(market.event_ticker) and self._wanted(market):
                found[market.ticker] = market
        before = set(self.markets)
        self.markets = found
        self.discovered_at = time.monotonic()
        return sorted(set(found) - before), sorted(before - set(found))

    def _plan(self) -> tuple[set[str], bool, set[str]]:
        """(series to walk, sweep every open event instead, explicit tickers)."""
        series: set[str] = set()
        tickers: set[str] = set()
        sweep = False
        for f in self.filters:
            tickers |= f.tickers
            if not f.explicit and not f.sports_only:
                sweep = True
                continue
            series |= f.series
            cats = set(f.categories) | ({"sports"} if f.sports_only and not f.explicit else set())
            series |= {t for t, s in self.series.items() if s.category.casefold() in cats}
        return series, sweep or len(series) > PER_SERIES_LIMIT, tickers

    def _take_event(self, ev: Event, found: dict[str, Market]) -> int:
        self.events[ev.event_ticker] = event_facts(ev)
        live = 0
        for market in ev.markets or ():
            if market.status in LIVE_STATUSES:
                live += 1
                if self._wanted(market):
                    found[market.ticker] = market
        return live

    async def learn_event(self, event_ticker: str) -> bool:
        """Make sure the event's facts are known (one REST call when not); False if it does not exist."""
        if event_ticker in self.events:
            return True
        try:
            ev = await self.rest.event(event_ticker)
        except RestNotFound:
            BAD_MARKETS.labels("no_event").inc()
            _log.warning(
                "market's event not found: its markets are left out", extra={"ctx": {"event": event_ticker}}
            )
            return False
        self.events[event_ticker] = event_facts(ev)
        return True

    async def fetch(self, tickers: list[str]) -> list[Market]:
        """These markets as REST has them now (``/markets?tickers=``, 100 a call)."""
        out: list[Market] = []
        for i in range(0, len(tickers), TICKERS_PER_CALL):
            async for m in self.rest.markets(tickers=tickers[i : i + TICKERS_PER_CALL]):
                out.append(m)
        return out

    async def admit(self, markets: list[Market], *, max_lookups: int) -> tuple[list[str], bool]:
        """Markets seen by polling that the universe may not hold yet: add the wanted ones.

        Returns (added tickers, complete); complete is False when more than ``max_lookups``
        events were unknown (the caller should discover again rather than look each up).
        """
        unknown = {m.event_ticker for m in markets if m.event_ticker not in self.events}
        if len(unknown) > max_lookups:
            return [], False
        for e in sorted(unknown):
            await self.learn_event(e)
        added = []
        for m in markets:
            if m.ticker not in self.markets and self._wanted(m):
                self.markets[m.ticker] = m
                added.append(m.ticker)
        return added, True
