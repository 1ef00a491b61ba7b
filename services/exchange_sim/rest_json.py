"""REST objects (Market, Event, Series, Trade, orderbook) as Kalshi's Trade API v2 returns them."""

from __future__ import annotations

import time
from typing import Any

from services.exchange_sim.catalog import SeriesDef
from services.exchange_sim.emission import TradeRec
from services.exchange_sim.frames import price_ranges
from services.exchange_sim.state import EventState, MarketState
from shared.units import ONE_DOLLAR, format_count, format_price

#: REST ``status`` filter -> market statuses it selects (``open`` returns objects whose status is "active").
STATUS_FILTER: dict[str, frozenset[str]] = {
    "unopened": frozenset({"initialized"}),
    "open": frozenset({"active"}),
    "paused": frozenset({"inactive"}),
    "closed": frozenset({"closed", "determined", "disputed", "amended"}),
    "settled": frozenset({"finalized"}),
}


def iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms // 1000))


def iso_us(ms: int) -> str:
    """With microseconds, as Kalshi writes a trade's ``created_time``: a client can order trades
    of one second (and tell those made before its subscription from those after)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}000Z"


def market_json(m: MarketState) -> dict[str, Any]:
    d = m.d
    yb, ybs, ya, yas = m.top()
    out: dict[str, Any] = {
        "ticker": d.ticker,
        "event_ticker": d.event_ticker,
        "market_type": "binary",
        "title": d.title,
        "subtitle": "",
        "yes_sub_title": d.yes_sub_title,
        "no_sub_title": d.no_sub_title,
        "created_time": iso(d.created_ms),
        "updated_time": iso(m.updated_ms),
        "open_time": iso(d.open_ms),
        "close_time": iso(m.close_ms),
        "expected_expiration_time": iso(d.expected_expiration_ms),
        "expiration_time": iso(m.close_ms),
        "latest_expiration_time": iso(m.close_ms),
        "settlement_timer_seconds": d.settlement_timer_s,
        "status": m.status,
        "notional_value_dollars": format_price(ONE_DOLLAR),
        "yes_bid_dollars": format_price(yb),
        "yes_ask_dollars": format_price(ya),
        "no_bid_dollars": format_price(ONE_DOLLAR - ya),
        "no_ask_dollars": format_price(ONE_DOLLAR - yb),
        "yes_bid_size_fp": format_count(ybs),
        "yes_ask_size_fp": format_count(yas),
        "last_price_dollars": format_price(m.last_price),
        "previous_yes_bid_dollars": format_price(m.prev_yes_bid),
        "previous_yes_ask_dollars": format_price(m.prev_yes_ask),
        "previous_price_dollars": format_price(m.prev_price),
        "volume_fp": format_count(m.volume),
        "volume_24h_fp": format_count(m.volume),
        "open_interest_fp": format_count(m.oi),
        "result": m.result,
        "can_close_early": d.can_close_early,
        "expiration_value": "",
        "rules_primary": d.rules_primary,
        "rules_secondary": d.rules_secondary,
        "price_level_structure": m.structure,
        "price_ranges": price_ranges(m),
        "is_provisional": False,
        # 3.31: required; the simulator's markets settle at 0 or 1 with no floor.
        "settlement_bounds_type": "default",
        "exchange_index": 0,
    }
    if m.settlement_value is not None:
        out["settlement_value_dollars"] = format_price(m.settlement_value)
    if m.settled_ms is not None:
        out["settlement_ts"] = iso(m.settled_ms)
    if d.strike_type:
        out["strike_type"] = d.strike_type
    if d.floor_strike is not None:
        out["floor_strike"] = d.floor_strike
    return out


def event_json(ev: EventState, series: SeriesDef | None, markets: list[MarketState] | None) -> dict[str, Any]:
    d = ev.d
    out: dict[str, Any] = {
        "event_ticker": d.event_ticker,
        "series_ticker": d.series_ticker,
        "sub_title": d.sub_title,
        "title": d.title,
        "collateral_return_type": d.collateral_return_type,
        "mutually_exclusive": d.mutually_exclusive,
        "category": series.category if series else d.category,
        "product_metadata": None,
        # 3.31: required on events; the simulator's events take their series' sources.
        "settlement_sources": [{"name": series.source_name, "url": series.source_url}] if series else [],
        "last_updated_ts": iso(ev.updated_ms),
        "exchange_index": 0,
    }
    if d.strike_date_ms is not None:
        out["strike_date"] = iso(d.strike_date_ms)
    if ev.fee_type_override is not None:
        out["fee_type_override"] = ev.fee_type_override
        out["fee_multiplier_override"] = ev.fee_multiplier_override
    if markets is not None:
        out["markets"] = [market_json(m) for m in markets]
    return out


def series_json(s: SeriesDef, volume: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ticker": s.ticker,
        "frequency": s.frequency,
        "title": s.title,
        "category": s.category,
        # 3.31: the `category` filter matches any entry of this list; each simulated series has one.
        "categories": [s.category],
        "tags": list(s.tags),
        "settlement_sources": [{"name": s.source_name, "url": s.source_url}],
        "contract_url": f"https://kalshi.com/series/{s.ticker.lower()}",
        "contract_terms_url": f"https://kalshi.com/series/{s.ticker.lower()}/terms",
        "product_metadata": None,
        "fee_type": s.fee_type,
        "fee_multiplier": s.fee_multiplier,
        "additional_prohibitions": [],
        "exchange_index": 0,
    }
    if volume is not None:
        out["volume_fp"] = format_count(volume)
    return out


def orderbook_json(m: MarketState, depth: int = 0) -> dict[str, Any]:
    """``{yes_dollars, no_dollars}``: ascending by price, best bid last; ``depth`` keeps the best N."""

    def side(book: dict[int, int]) -> list[list[str]]:
        prices = sorted(book)
        if depth > 0:
            prices = prices[-depth:]
        return [[format_price(p), format_count(book[p])] for p in prices]

    return {"yes_dollars": side(m.yes), "no_dollars": side(m.no)}


def trade_json(t: TradeRec) -> dict[str, Any]:
    side = "yes" if t.taker_yes else "no"
    return {
        "trade_id": t.trade_id,
        "ticker": t.ticker,
        "count_fp": format_count(t.count),
        "yes_price_dollars": format_price(t.yes_price),
        "no_price_dollars": format_price(ONE_DOLLAR - t.yes_price),
        "taker_side": side,
        "taker_outcome_side": side,
        "taker_book_side": "bid" if t.taker_yes else "ask",
        "created_time": iso_us(t.ts_ms),
        "is_block_trade": t.is_block,
    }
