"""Database rows -> the API's JSON: prices as exact decimal strings ("0.4300"), counts as
Kalshi's ``_fp`` strings ("25.00"), money in dollars ("0.012345"), probabilities as decimal
strings ("0.523400"), times as ISO 8601 UTC with microseconds. Never a float (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from shared.store.types import us_to_datetime
from shared.units import format_count, format_fixed, format_money, format_price

_LEVELS = msgspec.json.Decoder(list[tuple[int, int]])
_RANGES = msgspec.json.Decoder(list[tuple[int, int, int]])
_STRINGS = msgspec.json.Decoder(list[str])


def iso(ts: datetime | None) -> str | None:
    if ts is None:
        return None
    return ts.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def price(value: int | None) -> str | None:
    return None if value is None else format_price(value)


def count(value: int | None) -> str | None:
    return None if value is None else format_count(value)


def ppm(value: int | None) -> str | None:
    """Parts per million as a decimal fraction: 523_400 -> "0.523400"."""
    return None if value is None else format_fixed(value, 6)


def levels(raw: str | list[tuple[int, int]] | list[list[int]]) -> list[list[str]]:
    """[[price, size], ...] -> [["0.4300", "25.00"], ...], best first as stored."""
    pairs = _LEVELS.decode(raw) if isinstance(raw, str) else raw
    return [[format_price(p), format_count(s)] for p, s in pairs]


def _price_ranges(raw: str | None) -> list[dict[str, str]] | None:
    if not raw:
        return None
    try:
        decoded = _RANGES.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None  # written by the writer from validated messages; unreadable = not shown
    out = []
    for start, end, step in decoded:
        out.append({"start": format_price(start), "end": format_price(end), "step": format_price(step)})
    return out


def market(r: Any) -> dict[str, Any]:
    return {
        "ticker": r.ticker,
        "event_ticker": r.event_ticker,
        "series_ticker": r.series_ticker,
        "title": r.title,
        "event_title": r.event_title,
        "yes_sub_title": r.yes_sub_title,
        "no_sub_title": r.no_sub_title,
        "status": r.status,
        "market_type": r.market_type,
        "category": r.category,
        "open_time": iso(r.open_ts),
        "close_time": iso(r.close_ts),
        "expiration_time": iso(r.expiration_ts),
        "price_ranges": _price_ranges(r.price_ranges),
        "fee_type": r.fee_type,
        "fee_multiplier": ppm(r.fee_multiplier_ppm),
        "result": r.result,
        "strike_type": r.strike_type,
        "floor_strike": r.floor_strike,
        "cap_strike": r.cap_strike,
        "updated": iso(r.updated),
    }


def iso_us(us: int | None) -> str | None:
    """Integer microseconds since the epoch (as :mod:`shared.store.history` returns times)."""
    return None if us is None else iso(us_to_datetime(us))


def trade(r: dict[str, Any]) -> dict[str, Any]:
    """A row of ``history`` kind trades."""
    return {
        "trade_id": r["trade_id"],
        "ticker": r["ticker"],
        "yes_price": format_price(r["yes_price"]),
        "no_price": format_price(r["no_price"]),
        "count_fp": format_count(r["count"]),
        "taker_side": r["taker_side"],
        "is_block_trade": bool(r["is_block_trade"]),
        "source": r["source"],
        "ts": iso_us(r["ts"]),
        "recv": iso_us(r["recv"]),
    }


def snapshot(r: dict[str, Any]) -> dict[str, Any]:
    """A row of ``history`` kind snapshots (seq 0: a REST snapshot, which carries none)."""
    return {
        "ticker": r["ticker"],
        "source": r["source"],
        "conn": str(r["conn"]),  # ns-based ids pass 2**53: a string JavaScript keeps exact
        "sid": r["sid"],
        "seq": r["xseq"],
        "yes": levels(r["yes"]),
        "no": levels(r["no"]),
        "ts": iso_us(r["ts"]),
        "recv": iso_us(r["recv"]),
    }


def delta(r: dict[str, Any]) -> dict[str, Any]:
    """A row of ``history`` kind deltas."""
    return {
        "ticker": r["ticker"],
        "conn": str(r["conn"]),  # ns-based ids pass 2**53: a string JavaScript keeps exact
        "sid": r["sid"],
        "seq": r["xseq"],
        "side": r["side"],
        "price": format_price(r["price"]),
        "delta_fp": format_count(r["delta"]),
        "ts": iso_us(r["ts"]),
        "recv": iso_us(r["recv"]),
    }


def signal(r: Any) -> dict[str, Any]:
    try:
        legs = _STRINGS.decode(r.legs) if r.legs else []
    except (msgspec.DecodeError, msgspec.ValidationError):
        legs = []
    return {
        "strategy": r.strategy,
        "ticker": r.ticker,
        "side": r.side,
        "price": format_price(r.price),
        "size_fp": format_count(r.size),
        "fair": ppm(r.fair_ppm),
        "edge": format_money(r.edge),
        "fees": format_money(r.fees),
        "legs": legs,
        "detail": r.detail,
        "ts": iso(r.ts),
        "recv": iso(r.recv),
    }


def mid(mid_x2: int | None) -> str | None:
    """Twice the mid (exact) as the mid in dollars with one more decimal: 8701 -> "0.43505"."""
    return None if mid_x2 is None else format_fixed(mid_x2 * 5, 5)
