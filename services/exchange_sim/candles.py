"""Per-market minute candlesticks, built as the public state applies trades and top-of-book
changes, and merged into any period for ``GET .../candlesticks`` (OpenAPI 3.31).

Only minutes with activity have a candle (a trade or a change of the best bid or ask).
Prices in $0.0001 and counts in hundredths, as everywhere in the simulator; the mean
trade price is floored to $0.0001 (integer money, never floats).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from shared.units import format_count, format_price

MINUTE_S = 60
#: Minute candles kept per market: two days, enough for the day candles of the window.
KEEP_MINUTES = 2 * 1440


class Candle:
    __slots__ = (
        "ask",
        "bid",
        "minute",
        "notional",
        "oi",
        "price",
        "volume",
    )

    def __init__(self, minute: int, bid: int, ask: int, oi: int) -> None:
        self.minute = minute  # Unix minute the candle covers
        self.bid = [bid, bid, bid, bid]  # open, high, low, close
        self.ask = [ask, ask, ask, ask]
        self.price: list[int] | None = None  # open, high, low, close of trades; None: no trade
        self.volume = 0
        self.notional = 0  # sum of count x price, for the mean
        self.oi = oi

    def quote(self, bid: int, ask: int) -> None:
        for ohlc, p in ((self.bid, bid), (self.ask, ask)):
            ohlc[1] = max(ohlc[1], p)
            ohlc[2] = min(ohlc[2], p)
            ohlc[3] = p

    def trade(self, price: int, count: int, oi: int) -> None:
        if self.price is None:
            self.price = [price, price, price, price]
        else:
            self.price[1] = max(self.price[1], price)
            self.price[2] = min(self.price[2], price)
            self.price[3] = price
        self.volume += count
        self.notional += count * price
        self.oi = oi


class MarketCandles:
    """One market's minute candles, oldest first."""

    def __init__(self) -> None:
        self.minutes: deque[Candle] = deque(maxlen=KEEP_MINUTES)

    def at(self, ts_ms: int, bid: int, ask: int, oi: int) -> Candle:
        minute = ts_ms // 1000 // MINUTE_S
        if self.minutes and self.minutes[-1].minute >= minute:
            return self.minutes[-1]  # never out of order: a late timestamp joins the open minute
        c = Candle(minute, bid, ask, oi)
        self.minutes.append(c)
        return c

    def periods(self, start_s: int, end_s: int, period_min: int, latest_before: bool) -> list[dict[str, Any]]:
        """Candles of ``period_min`` minutes whose end lies in [start_s, end_s], oldest first."""
        groups: dict[int, list[Candle]] = {}
        before: Candle | None = None
        last_price: int | None = None
        previous: dict[int, int | None] = {}
        for c in self.minutes:
            end = (c.minute // period_min + 1) * period_min * MINUTE_S
            if end < start_s:
                before = c
            elif end <= end_s:
                if end not in groups:
                    previous[end] = last_price
                groups.setdefault(end, []).append(c)
            if c.price is not None:
                last_price = c.price[3]
        out = [_merge(end, cs, previous[end]) for end, cs in groups.items()]
        if latest_before and before is not None:
            first_end = (start_s // (period_min * MINUTE_S) + 1) * period_min * MINUTE_S
            out.insert(0, _carried(first_end, before, last_price_before(self.minutes, before)))
        return out


def last_price_before(minutes: deque[Candle], upto: Candle) -> int | None:
    last = None
    for c in minutes:
        if c.price is not None:
            last = c.price[3]
        if c is upto:
            break
    return last


def _ohlc(values: list[int]) -> dict[str, str]:
    o, h, lo, c = values
    return {
        "open_dollars": format_price(o),
        "low_dollars": format_price(lo),
        "high_dollars": format_price(h),
        "close_dollars": format_price(c),
    }


def _merge(end_s: int, cs: list[Candle], previous: int | None) -> dict[str, Any]:
    def combine(parts: list[list[int]]) -> list[int]:
        return [parts[0][0], max(p[1] for p in parts), min(p[2] for p in parts), parts[-1][3]]

    traded = [c.price for c in cs if c.price is not None]
    volume = sum(c.volume for c in cs)
    price: dict[str, Any] = {"previous_dollars": format_price(previous) if previous is not None else None}
    if traded:
        price.update(_ohlc(combine(traded)))
        price["mean_dollars"] = format_price(sum(c.notional for c in cs) // volume) if volume else None
    else:
        price.update(dict.fromkeys(("open_dollars", "low_dollars", "high_dollars", "close_dollars"), None))
        price["mean_dollars"] = None
    return {
        "end_period_ts": end_s,
        "yes_bid": _ohlc(combine([c.bid for c in cs])),
        "yes_ask": _ohlc(combine([c.ask for c in cs])),
        "price": price,
        "volume_fp": format_count(volume),
        "open_interest_fp": format_count(cs[-1].oi),
    }


def _carried(end_s: int, c: Candle, last_price: int | None) -> dict[str, Any]:
    """``include_latest_before_start``: the latest earlier candle carried to the first period
    boundary, its trade prices null and ``previous`` its last trade price."""
    out = _merge(end_s, [c], last_price)
    out["yes_bid"] = _ohlc([c.bid[3]] * 4)
    out["yes_ask"] = _ohlc([c.ask[3]] * 4)
    out["price"] = {k: None for k in out["price"]} | {
        "previous_dollars": format_price(last_price) if last_price is not None else None
    }
    out["volume_fp"] = format_count(0)
    return out
