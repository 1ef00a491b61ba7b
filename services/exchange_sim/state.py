"""Mutable exchange state: markets with their books and statistics, events, series, trades.

Changed only through :meth:`ExchangeState.apply` (one emission at a time), so
the engine's private copy and the public copy that REST and the ground truth
read evolve identically.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from services.exchange_sim.candles import MarketCandles
from services.exchange_sim.catalog import PRICE_STRUCTURES, EventDef, MarketDef, SeriesDef, series_catalog
from services.exchange_sim.emission import (
    K_DELTA,
    K_INIT,
    K_LIFE,
    K_TICKER,
    K_TRADE,
    YES,
    Emission,
    LifeChange,
    TradeRec,
)
from shared.units import ONE_DOLLAR


class BookError(AssertionError):
    """A delta that would make a level negative: an engine bug, never a client's problem."""


class MarketState:
    __slots__ = (
        "close_ms",
        "d",
        "determination_ms",
        "dollar_volume",
        "last_price",
        "last_size",
        "no",
        "oi",
        "prev_price",
        "prev_yes_ask",
        "prev_yes_bid",
        "result",
        "settled_ms",
        "settlement_value",
        "status",
        "structure",
        "updated_ms",
        "volume",
        "yes",
    )

    def __init__(self, d: MarketDef) -> None:
        self.d = d
        self.yes: dict[int, int] = {}
        self.no: dict[int, int] = {}
        self.status = "active"
        self.close_ms = d.close_ms
        self.structure = d.price_level_structure
        self.result = ""
        self.settlement_value: int | None = None
        self.determination_ms: int | None = None
        self.settled_ms: int | None = None
        self.volume = 0  # hundredths of a contract
        self.oi = 0
        self.last_price = 0  # $0.0001; 0 = never traded
        self.last_size = 0
        self.dollar_volume = 0  # count(hundredths) x price($0.0001) = $1e-6 units
        self.prev_yes_bid = 0
        self.prev_yes_ask = 0
        self.prev_price = 0
        self.updated_ms = d.created_ms

    @property
    def ticker(self) -> str:
        return self.d.ticker

    def best_yes_bid(self) -> tuple[int, int]:
        if not self.yes:
            return 0, 0
        p = max(self.yes)
        return p, self.yes[p]

    def best_no_bid(self) -> tuple[int, int]:
        if not self.no:
            return 0, 0
        p = max(self.no)
        return p, self.no[p]

    def top(self) -> tuple[int, int, int, int]:
        """(yes bid, size, yes ask, size); an empty side reads bid 0 / ask $1 with size 0."""
        yb, ybs = self.best_yes_bid()
        nb, nbs = self.best_no_bid()
        return yb, ybs, (ONE_DOLLAR - nb) if nbs else ONE_DOLLAR, nbs

    def ranges(self) -> tuple[tuple[int, int, int], ...]:
        return PRICE_STRUCTURES[self.structure]

    def tradeable(self) -> bool:
        return self.status == "active"


class EventState:
    __slots__ = ("d", "fee_multiplier_override", "fee_type_override", "updated_ms")

    def __init__(self, d: EventDef) -> None:
        self.d = d
        self.fee_type_override: str | None = None
        self.fee_multiplier_override: float | None = None
        self.updated_ms = d.created_ms


class FeeChange:
    """An event fee override as it took effect (the simulator schedules none ahead)."""

    __slots__ = ("event_ticker", "fee_multiplier", "fee_type", "id", "series_ticker", "ts_ms")

    def __init__(self, n: int, ev: EventState) -> None:
        self.id = f"sim-fee-{n}"
        self.event_ticker = ev.d.event_ticker
        self.series_ticker = ev.d.series_ticker
        self.fee_type = ev.fee_type_override
        self.fee_multiplier = ev.fee_multiplier_override
        self.ts_ms = ev.updated_ms


class ExchangeState:
    def __init__(self, events: list[EventDef], *, max_trades: int = 100_000, candles: bool = False) -> None:
        self.series: dict[str, SeriesDef] = {s.ticker: s for s in series_catalog()}
        self.events: dict[str, EventState] = {}
        self.markets: dict[str, MarketState] = {}
        self.by_id: dict[str, str] = {}
        #: Newest last; REST pages newest first.
        self.trades: deque[TradeRec] = deque(maxlen=max_trades)
        self.trades_total = 0  # trades ever applied (REST cursors count from it)
        #: Event fee overrides as applied, oldest first (``GET /events/fee_changes``); bounded,
        #: as blast mode changes fees hundreds of times a second.
        self.fee_changes: deque[FeeChange] = deque(maxlen=10_000)
        self.fee_changes_total = 0
        #: Minute candlesticks per market; only the public state (REST) keeps them.
        self.keep_candles = candles
        self.candles: dict[str, MarketCandles] = {}
        for ev in events:
            self.add_event(ev)

    def add_event(self, ev: EventDef) -> None:
        self.events[ev.event_ticker] = EventState(ev)
        for m in ev.markets:
            self.markets[m.ticker] = MarketState(m)
            self.by_id[m.market_id] = m.ticker

    def apply(self, em: Emission) -> None:
        kind = em.kind
        if kind == K_DELTA:
            side, price, delta = em.data
            m = self.markets[em.ticker]
            book = m.yes if side == YES else m.no
            size = book.get(price, 0) + delta
            if size > 0:
                book[price] = size
            elif size == 0:
                book.pop(price, None)
            else:
                raise BookError(f"{em.ticker} {'yes' if side == YES else 'no'} {price}: size would be {size}")
        elif kind == K_TRADE:
            t: TradeRec = em.data
            m = self.markets[t.ticker]
            m.volume += t.count
            m.last_price = t.yes_price
            m.last_size = t.count
            m.dollar_volume += t.count * t.yes_price
            if self.keep_candles:
                yb, _, ya, _ = m.top()
                self._candles(t.ticker).at(t.ts_ms, yb, ya, m.oi).trade(t.yes_price, t.count, t.oi_after)
            m.oi = t.oi_after
            self.trades.append(t)
            self.trades_total += 1
        elif kind == K_TICKER:
            if self.keep_candles:
                m = self.markets[em.ticker]
                yb, _, ya, _ = m.top()
                self._candles(em.ticker).at(em.data, yb, ya, m.oi).quote(yb, ya)
        elif kind in (K_LIFE, K_INIT):
            self._life(em.data)

    def _candles(self, ticker: str) -> MarketCandles:
        c = self.candles.get(ticker)
        if c is None:
            c = self.candles[ticker] = MarketCandles()
        return c

    def _life(self, ch: LifeChange) -> None:
        if ch.scope == "new_event":
            self.add_event(ch.new_event)
            return
        target: Any = self.markets[ch.key] if ch.scope == "market" else self.events[ch.key]
        for name, value in ch.fields.items():
            setattr(target, name, value)
        if ch.scope == "event" and "fee_type_override" in ch.fields:
            self.fee_changes_total += 1
            self.fee_changes.append(FeeChange(self.fee_changes_total, target))
