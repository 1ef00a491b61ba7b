"""Bus messages as JSON-able dicts in the API's units: THE one conversion (REST and stream).

Prices are exact decimal strings of dollars (``"0.4300"``, :func:`shared.units.format_price`),
counts Kalshi's ``_fp`` strings (``"25.00"``), money dollars to the micro-dollar
(``"0.012345"``); times ISO-8601 UTC with microseconds, next to the integer they came from
(``ts_recv`` + ``ts_recv_ns``, ``ts_exch`` + ``ts_exch_ms``). Never a float.

An integer that can pass 2**53 (what a JavaScript number holds exactly) is a decimal string:
nanosecond times (``ts_recv_ns``) and connection ids (``conn``: the connector numbers its
connections by their start in ns). Sequence numbers, sids and millisecond times stay numbers. A time outside
what ISO-8601 can write (years 1..9999) is ``null`` with its integer kept: the bus allows any
int64 and the conversion is total.

Only public market data is served: this account's fills, positions and orders, control
messages and the raw book frames (snapshots, deltas: the book is the REST ``book`` route) are
:class:`Unsupported`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.messages import (
    BookState,
    Depth,
    Gap,
    Heartbeat,
    Level,
    MarketLifecycle,
    MarketMeta,
    Message,
    PollSnapshot,
    Signal,
    Ticker,
    TopOfBook,
    Trade,
    WorkerEvent,
)
from shared.units import format_count, format_fixed, format_money, format_price

__all__ = [
    "SERVED_KINDS",
    "Unsupported",
    "convert",
    "count",
    "iso_ms",
    "iso_ns",
    "levels",
    "money",
    "opt_price",
    "price",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Unsupported(TypeError):
    """A bus message kind the API does not serve."""


class _Seconds:
    """``"YYYY-MM-DDTHH:MM:SS"`` of a Unix second, the last few remembered: every message
    carries its times and datetime arithmetic per field was a fifth of the gateway's CPU; the
    messages of one moment share their seconds."""

    __slots__ = ("_cache",)

    SIZE = 64

    def __init__(self) -> None:
        self._cache: dict[int, str | None] = {}

    def __call__(self, second: int) -> str | None:
        """None when the second is outside what ISO-8601 writes (years 1..9999)."""
        cache = self._cache
        text = cache.get(second, "")
        if text != "":
            return text
        try:
            text = (_EPOCH + timedelta(seconds=second)).isoformat(timespec="seconds")[:19]
        except OverflowError:
            text = None
        if len(cache) >= self.SIZE:
            cache.clear()
        cache[second] = text
        return text


_second = _Seconds()


def iso_ns(ns: int | None) -> str | None:
    """Unix ns -> ``"2026-12-03T14:40:26.123456Z"`` (truncated to the microsecond); None if unwritable."""
    if ns is None:
        return None
    second, rest = divmod(ns, 1_000_000_000)  # floor: a time before 1970 has a positive fraction
    head = _second(second)
    return None if head is None else f"{head}.{rest // 1000:06d}Z"


def iso_ms(ms: int | None) -> str | None:
    """Unix ms -> ISO-8601 UTC with microseconds; None if unwritable."""
    if ms is None:
        return None
    second, rest = divmod(ms, 1000)
    head = _second(second)
    return None if head is None else f"{head}.{rest:03d}000Z"


def price(value: int) -> str:
    return format_price(value)


def opt_price(value: int | None) -> str | None:
    return None if value is None else format_price(value)


def count(value: int) -> str:
    return format_count(value)


def money(value: int) -> str:
    return format_money(value)


def levels(book: Sequence[Level]) -> list[list[str]]:
    """``[(price, size), ...]`` -> ``[["0.4300", "25.00"], ...]`` (Kalshi's orderbook_fp shape)."""
    return [[format_price(p), format_count(s)] for p, s in book]


def _header(msg: Message, out: dict[str, Any]) -> dict[str, Any]:
    out["ts_recv"] = iso_ns(msg.ts_recv)
    out["ts_recv_ns"] = str(msg.ts_recv)
    out["ts_exch"] = iso_ms(msg.ts_exch)
    out["ts_exch_ms"] = msg.ts_exch
    return out


def _tob(m: TopOfBook) -> dict[str, Any]:
    # mid = mid_x2 / 2 price units: exact with one more decimal ($0.00005 steps).
    mid = None if m.mid_x2 is None else format_fixed(m.mid_x2 * 5, 5)
    return {
        "ticker": m.ticker,
        "xseq": m.xseq,
        "valid": m.valid,
        "yes_bid": opt_price(m.yes_bid),
        "yes_bid_size_fp": format_count(m.yes_bid_size),
        "yes_ask": opt_price(m.yes_ask),
        "yes_ask_size_fp": format_count(m.yes_ask_size),
        "no_bid": opt_price(m.no_bid),
        "no_ask": opt_price(m.no_ask),
        "mid": mid,
        "spread": opt_price(m.spread),
    }


def _trade(m: Trade) -> dict[str, Any]:
    return {
        "ticker": m.ticker,
        "trade_id": m.trade_id,
        "yes_price": format_price(m.yes_price),
        "no_price": format_price(m.no_price),
        "count_fp": format_count(m.count),
        "taker_side": m.taker_side,
        "is_block_trade": m.is_block_trade,
        "source": m.source,
    }


def _signal(m: Signal) -> dict[str, Any]:
    return {
        "ticker": m.ticker,
        "strategy": m.strategy,
        "side": m.side,
        "price": format_price(m.price),
        "size_fp": format_count(m.size),
        # fair_ppm: parts per million of $1 = micro-dollars.
        "fair": format_money(m.fair_ppm),
        "edge": format_money(m.edge),
        "fees": format_money(m.fees),
        "legs": list(m.legs),
        "detail": m.detail,
    }


def _bookstate(m: BookState) -> dict[str, Any]:
    return {
        "ticker": m.ticker,
        "valid": m.valid,
        "reason": m.reason,
        "conn": str(m.conn),
        "sid": m.sid,
        "xseq": m.xseq,
    }


def _depth(m: Depth) -> dict[str, Any]:
    return {"ticker": m.ticker, "xseq": m.xseq, "valid": m.valid, "yes": levels(m.yes), "no": levels(m.no)}


def _gap(m: Gap) -> dict[str, Any]:
    return {
        "tickers": list(m.tickers),
        "conn": str(m.conn),
        "sid": m.sid,
        "expected": m.expected,
        "received": m.received,
        "reason": m.reason,
        "status": m.status,
        "method": m.method,
        "detected": iso_ms(m.detected_ms),
        "detected_ms": m.detected_ms,
        "recovered": iso_ms(m.recovered_ms),
        "recovered_ms": m.recovered_ms,
    }


def _ticker(m: Ticker) -> dict[str, Any]:
    return {
        "ticker": m.ticker,
        "market_id": m.market_id,
        "last_price": opt_price(m.price),
        "yes_bid": format_price(m.yes_bid),
        "yes_ask": format_price(m.yes_ask),
        "yes_bid_size_fp": format_count(m.yes_bid_size),
        "yes_ask_size_fp": format_count(m.yes_ask_size),
        "last_trade_size_fp": format_count(m.last_trade_size),
        "volume_fp": format_count(m.volume),
        "open_interest_fp": format_count(m.open_interest),
        # Kalshi's own integer dollars.
        "dollar_volume": m.dollar_volume,
        "dollar_open_interest": m.dollar_open_interest,
    }


def _poll(m: PollSnapshot) -> dict[str, Any]:
    return {
        "ticker": m.ticker,
        "status": m.status,
        "yes_bid": opt_price(m.yes_bid),
        "yes_ask": opt_price(m.yes_ask),
        "yes_bid_size_fp": format_count(m.yes_bid_size),
        "yes_ask_size_fp": format_count(m.yes_ask_size),
        "last_price": opt_price(m.last_price),
        "volume_fp": format_count(m.volume),
        "open_interest_fp": format_count(m.open_interest),
        "fallback": m.fallback,
    }


def _ranges(ranges: Sequence[Any] | None) -> list[dict[str, str]] | None:
    if ranges is None:
        return None
    return [
        {"start": format_price(r.start), "end": format_price(r.end), "step": format_price(r.step)}
        for r in ranges
    ]


def _lifecycle(m: MarketLifecycle) -> dict[str, Any]:
    return {
        "ticker": m.ticker,
        "event_type": m.event_type,
        "event_ticker": m.event_ticker,
        "open_time": iso_ms(m.open_ms),
        "close_time": iso_ms(m.close_ms),
        "result": m.result,
        "determination_time": iso_ms(m.determination_ms),
        "settlement_value": opt_price(m.settlement_value),
        "settled_time": iso_ms(m.settled_ms),
        "is_deactivated": m.is_deactivated,
        "price_ranges": _ranges(m.price_ranges),
        "title": m.title,
        "yes_sub_title": m.yes_sub_title,
        "no_sub_title": m.no_sub_title,
        "strike_type": m.strike_type,
        "floor_strike": m.floor_strike,
        "cap_strike": m.cap_strike,
    }


def _meta(m: MarketMeta) -> dict[str, Any]:
    return {
        "ticker": m.ticker,
        "event_ticker": m.event_ticker,
        "series_ticker": m.series_ticker,
        "title": m.title,
        "yes_sub_title": m.yes_sub_title,
        "no_sub_title": m.no_sub_title,
        "status": m.status,
        "market_type": m.market_type,
        "category": m.category,
        "open_time": iso_ms(m.open_ms),
        "close_time": iso_ms(m.close_ms),
        "expiration_time": iso_ms(m.expiration_ms),
        "price_ranges": _ranges(m.price_ranges),
        "fee_type": m.fee_type,
        "fee_multiplier": format_money(m.fee_multiplier_ppm),
        "result": m.result,
        "strike_type": m.strike_type,
        "floor_strike": m.floor_strike,
        "cap_strike": m.cap_strike,
    }


def _hb(m: Heartbeat) -> dict[str, Any]:
    return {
        "worker": m.worker,
        "pid": m.pid,
        "uptime_ms": m.uptime_ms,
        "ready": m.ready,
        "counters": dict(m.counters),
    }


def _wevent(m: WorkerEvent) -> dict[str, Any]:
    return {"worker": m.worker, "event": m.event, "pid": m.pid, "exit_code": m.exit_code, "detail": m.detail}


_CONVERTERS: dict[type, Callable[[Any], dict[str, Any]]] = {
    TopOfBook: _tob,
    Trade: _trade,
    Signal: _signal,
    BookState: _bookstate,
    Depth: _depth,
    Gap: _gap,
    Ticker: _ticker,
    PollSnapshot: _poll,
    MarketLifecycle: _lifecycle,
    MarketMeta: _meta,
    Heartbeat: _hb,
    WorkerEvent: _wevent,
}

#: The kind tags :func:`convert` serves.
SERVED_KINDS: frozenset[str] = frozenset(cls.__struct_config__.tag for cls in _CONVERTERS)  # type: ignore[attr-defined]


def convert(msg: Message) -> dict[str, Any]:
    """``msg`` as a JSON-able dict (its own fields, then the header times); :class:`Unsupported`
    for a kind the API does not serve."""
    fn = _CONVERTERS.get(type(msg))
    if fn is None:
        raise Unsupported(f"bus kind {type(msg).__name__} is not served")
    return _header(msg, fn(msg))
