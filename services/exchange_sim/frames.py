"""Kalshi WS frame encoding: message bodies, envelopes and command replies, as JSON bytes.

Bodies are encoded once per emission; the per-subscription envelope (sid, seq,
``sending_ts_ms``) is spliced around them, so fan-out costs one bytes format per
frame. Field names, order and fixed-point formats follow Kalshi's frames.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from services.exchange_sim.emission import YES, TradeRec
from services.exchange_sim.state import EventState, MarketState
from shared.units import ONE_DOLLAR, format_count, format_price

_ENC = msgspec.json.Encoder()
_prefix_cache: dict[str, bytes] = {}
_rfc_cache: dict[int, str] = {}


def encode(obj: Any) -> bytes:
    return _ENC.encode(obj)


def rfc3339(ms: int) -> str:
    """Kalshi's ``ts``/``time`` strings: whole seconds, UTC, ``Z``."""
    s = ms // 1000
    out = _rfc_cache.get(s)
    if out is None:
        if len(_rfc_cache) > 4096:
            _rfc_cache.clear()
        out = _rfc_cache[s] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(s))
    return out


def _market_prefix(m: MarketState) -> bytes:
    # Keyed by both: two catalogs in one process (tests, a replay beside a catalog) may reuse a
    # ticker under another market_id.
    key = f"{m.d.ticker}/{m.d.market_id}"
    p = _prefix_cache.get(key)
    if p is None:
        p = _prefix_cache[key] = b'{"market_ticker":"%s","market_id":"%s",' % (
            m.d.ticker.encode(),
            m.d.market_id.encode(),
        )
    return p


def delta_bodies(m: MarketState, side: int, price: int, delta: int, ts_ms: int) -> tuple[bytes, bytes | None]:
    """The delta body, and for a NO-side delta its ``use_yes_price`` twin (price on the YES scale)."""
    head = _market_prefix(m)
    tail = b'"delta_fp":"%s","side":"%s","ts":"%s","ts_ms":%d}' % (
        format_count(delta).encode(),
        b"yes" if side == YES else b"no",
        rfc3339(ts_ms).encode(),
        ts_ms,
    )
    body = head + b'"price_dollars":"%s",' % format_price(price).encode() + tail
    if side == YES:
        return body, None
    return body, head + b'"price_dollars":"%s",' % format_price(ONE_DOLLAR - price).encode() + tail


def levels(book: dict[int, int], yes_scale: bool = False) -> list[list[str]]:
    """Kalshi's ``[[price, count], ...]``, ascending by the price as reported (best NO-price bid last)."""
    if yes_scale:
        return [[format_price(ONE_DOLLAR - p), format_count(book[p])] for p in sorted(book, reverse=True)]
    return [[format_price(p), format_count(book[p])] for p in sorted(book)]


def snapshot_body(m: MarketState, use_yes_price: bool) -> bytes:
    msg: dict[str, Any] = {"market_ticker": m.d.ticker, "market_id": m.d.market_id}
    # Kalshi leaves a side's key out when that side is empty.
    if m.yes:
        msg["yes_dollars_fp"] = levels(m.yes)
    if m.no:
        msg["no_dollars_fp"] = levels(m.no, use_yes_price)
    return _ENC.encode(msg)


def ticker_body(m: MarketState, ts_ms: int) -> bytes:
    yb, ybs, ya, yas = m.top()
    return _market_prefix(m) + (
        b'"price_dollars":"%s","yes_bid_dollars":"%s","yes_ask_dollars":"%s","volume_fp":"%s",'
        b'"open_interest_fp":"%s","dollar_volume":%d,"dollar_open_interest":%d,"yes_bid_size_fp":"%s",'
        b'"yes_ask_size_fp":"%s","last_trade_size_fp":"%s","ts":%d,"ts_ms":%d,"time":"%s"}'
        % (
            format_price(m.last_price).encode(),
            format_price(yb).encode(),
            format_price(ya).encode(),
            format_count(m.volume).encode(),
            format_count(m.oi).encode(),
            m.dollar_volume // 1_000_000,
            m.oi * m.last_price // 1_000_000,
            format_count(ybs).encode(),
            format_count(yas).encode(),
            format_count(m.last_size).encode(),
            ts_ms // 1000,
            ts_ms,
            rfc3339(ts_ms).encode(),
        )
    )


def trade_body(t: TradeRec) -> bytes:
    side = b"yes" if t.taker_yes else b"no"
    return (
        b'{"trade_id":"%s","market_ticker":"%s","yes_price_dollars":"%s","no_price_dollars":"%s",'
        b'"count_fp":"%s","taker_side":"%s","taker_outcome_side":"%s","taker_book_side":"%s",'
        b'"is_block_trade":%s,"ts":%d,"ts_ms":%d}'
        % (
            t.trade_id.encode(),
            t.ticker.encode(),
            format_price(t.yes_price).encode(),
            format_price(ONE_DOLLAR - t.yes_price).encode(),
            format_count(t.count).encode(),
            side,
            side,
            b"bid" if t.taker_yes else b"ask",
            b"true" if t.is_block else b"false",
            t.ts_ms // 1000,
            t.ts_ms,
        )
    )


def price_ranges(m: MarketState) -> list[dict[str, str]]:
    return [
        {"start": format_price(a), "end": format_price(b), "step": format_price(s)} for a, b, s in m.ranges()
    ]


def created_body(m: MarketState, ev: EventState) -> bytes:
    d = m.d
    meta: dict[str, Any] = {
        "name": d.title,
        "title": d.title,
        "yes_sub_title": d.yes_sub_title,
        "no_sub_title": d.no_sub_title,
        "rules_primary": d.rules_primary,
        "rules_secondary": d.rules_secondary,
        "can_close_early": d.can_close_early,
        "event_ticker": ev.d.event_ticker,
        "expected_expiration_ts": d.expected_expiration_ms // 1000,
    }
    if d.strike_type:
        meta["strike_type"] = d.strike_type
    if d.floor_strike is not None:
        meta["floor_strike"] = d.floor_strike
    return _ENC.encode(
        {
            "market_ticker": d.ticker,
            "event_type": "created",
            "exchange_index": 0,
            "open_ts": d.open_ms // 1000,
            "close_ts": m.close_ms // 1000,
            "price_level_structure": m.structure,
            "price_ranges": price_ranges(m),
            "additional_metadata": meta,
        }
    )


def metadata_body(m: MarketState) -> bytes:
    """``metadata_updated``: its own message shape since the December AsyncAPI (strike fields and
    ``yes_sub_title`` left the other lifecycle events for it)."""
    d = m.d
    msg: dict[str, Any] = {"market_ticker": d.ticker, "event_type": "metadata_updated"}
    if d.strike_type:
        msg["strike_type"] = d.strike_type
    if d.floor_strike is not None:
        msg["floor_strike"] = d.floor_strike
    if d.cap_strike is not None:
        msg["cap_strike"] = d.cap_strike
    msg["yes_sub_title"] = d.yes_sub_title
    return _ENC.encode(msg)


def life_body(ticker: str, event_type: str, **fields: Any) -> bytes:
    return _ENC.encode({"market_ticker": ticker, "event_type": event_type, **fields})


def event_body(ev: EventState) -> bytes:
    d = ev.d
    msg: dict[str, Any] = {
        "event_ticker": d.event_ticker,
        "exchange_index": 0,
        "title": d.title,
        "subtitle": d.sub_title,
        "collateral_return_type": d.collateral_return_type,
        "series_ticker": d.series_ticker,
    }
    if d.strike_date_ms is not None:
        msg["strike_date"] = d.strike_date_ms // 1000
    return _ENC.encode(msg)


def fee_body(event_ticker: str, fee_type: str | None, multiplier: float | None) -> bytes:
    return _ENC.encode(
        {"event_ticker": event_ticker, "fee_type_override": fee_type, "fee_multiplier_override": multiplier}
    )


# ---- envelopes --------------------------------------------------------------------------------
def data_frame(prefix: bytes, sid: int, seq: int | None, body: bytes, sending_ms: int) -> bytes:
    if seq is None:
        return b'%s%d,"msg":%s,"sending_ts_ms":%d}' % (prefix, sid, body, sending_ms)
    return b'%s%d,"seq":%d,"msg":%s,"sending_ts_ms":%d}' % (prefix, sid, seq, body, sending_ms)


def reply(cmd_id: int | None, type_name: str, msg: Any = None, **top: Any) -> bytes:
    """A command reply; ``id`` 0 or absent is left out, as Kalshi treats 0 as no id."""
    out: dict[str, Any] = {}
    if cmd_id:
        out["id"] = cmd_id
    out.update(top)
    out["type"] = type_name
    if msg is not None:
        out["msg"] = msg
    return _ENC.encode(out)


def with_id(type_prefix: bytes, cmd_id: int) -> bytes:
    """``{"type":"X","sid":`` -> ``{"type":"X","id":N,"sid":`` (a frame answering command N)."""
    head, sid = type_prefix.rsplit(b'"sid":', 1)
    return b'%s"id":%d,"sid":%s' % (head, cmd_id, sid)


#: Kalshi's current table; 6, 16 and 17 are retired (not emitted, numbers reserved).
ERROR_TEXT = {
    1: "Unable to process message",
    2: "Params required",
    3: "Channels required",
    4: "Subscription IDs required",
    5: "Unknown command",
    7: "Unknown subscription ID",
    8: "Unknown channel name",
    9: "Authentication required",
    10: "Channel error",
    11: "Invalid parameter",
    12: "Exactly one subscription ID is required",
    13: "Unsupported action",
    14: "Market Ticker required",
    15: "Action required",
    18: "Command timeout",
    25: "Subscription buffer overflow",
    26: "Subscription market limit exceeded",
    27: "Too many requests",
}


def error(
    cmd_id: int | None, code: int, *, sid: int | None = None, seq: int | None = None, **extra: Any
) -> bytes:
    """``sid`` (and ``seq``, on a sequenced channel) when the error concerns a subscription."""
    msg: dict[str, Any] = {"code": code, "msg": ERROR_TEXT.get(code, "Error")}
    msg.update(extra)
    top: dict[str, Any] = {}
    if sid is not None:
        top["sid"] = sid
    if seq is not None:
        top["seq"] = seq
    return reply(cmd_id, "error", msg, **top)
