"""Wire -> bus: pure functions from Kalshi's decoded frames to bus messages, in exact units.

Prices become integers in $0.0001, counts integers in hundredths, money in
micro-dollars (:mod:`shared.units`); a value finer than its unit raises
:class:`~shared.units.UnitError` (the caller counts the frame as bad), it is never
rounded. Times become Unix milliseconds.

``use_yes_price``: when a subscription asked Kalshi to express NO-side book
levels on the YES axis, pass ``yes_price=True`` and the NO prices are turned back
into NO prices (``1 - p``), so on the bus a NO level is always a NO bid.

Every integer a parser returns fits the bus schema and a BIGINT column (int64): the
numbers go through :mod:`shared.kalshi.numbers` (a value outside raises its
:class:`~shared.kalshi.numbers.RangeError`, counted as reason ``range``), and integers the
wire carries as JSON numbers are bounded by the wire schema itself (:mod:`shared.kalshi.ws`).
So nothing out of range reaches a bus encoder or the database.
"""

from __future__ import annotations

import re

import msgspec

from shared.kalshi import rest_models, ws
from shared.kalshi.numbers import (
    RangeError,
    book_price,
    count,
    fee_multiplier_ppm,
    fixed,
    optional_price,
    parse_count,
    parse_money,
    parse_price,
    price,
    rfc3339_ms,
    seconds_to_ms,
    signed_count,
)
from shared.kalshi.parse_private import (  # the private channels' parsers, re-exported
    event_ms,
    fill,
    market_position,
    order_group,
    outcome_side,
    user_order,
)
from shared.messages import (
    BookDelta,
    BookSnapshot,
    EventLifecycle,
    FeeUpdate,
    Level,
    MarketLifecycle,
    MarketMeta,
    PriceRange,
    Ticker,
    Trade,
)
from shared.units import MONEY_SCALE, ONE_DOLLAR, UnitError

#: Re-exported: callers parse REST and wire numbers through this module.
__all__ = [
    "RangeError",
    "book_price",
    "count",
    "delta",
    "event_lifecycle",
    "fee_multiplier_ppm",
    "fee_terms",
    "fee_update",
    "fill",
    "fixed",
    "levels",
    "lifecycle",
    "market_meta",
    "market_position",
    "optional_price",
    "order_group",
    "parse_count",
    "parse_money",
    "parse_price",
    "price",
    "price_ranges",
    "rest_trade",
    "rfc3339_ms",
    "seconds_to_ms",
    "signed_count",
    "snapshot",
    "ticker",
    "trade",
    "user_order",
]


def price_ranges(ranges: list[ws.PriceRangeWire] | None) -> list[PriceRange]:
    if not ranges:
        return []
    out = []
    for r in ranges:
        start, end, step = parse_price(r.start), parse_price(r.end), parse_price(r.step)
        if step <= 0 or end < start:
            raise UnitError(f"bad price range {r.start}..{r.end} step {r.step}")
        out.append(PriceRange(start, end, step))
    return out


# ---- order book ---------------------------------------------------------------------------------


def levels(wire: list[ws.Level], *, flip: bool) -> list[Level]:
    """Wire levels -> ascending (price, size); ``flip`` turns YES-axis NO prices into NO prices.

    Raises UnitError on a repeated price: two entries for one level is not a book.
    """
    out: list[Level] = []
    seen: set[int] = set()
    for p, c in wire:
        price = book_price(p)
        if flip:
            price = ONE_DOLLAR - price
        if price in seen:
            raise UnitError(f"price level {p!r} appears twice")
        seen.add(price)
        out.append((price, count(c)))
    out.sort()
    return out


def snapshot(
    frame: ws.OrderbookSnapshot, conn: int, ts_recv: int, *, yes_price: bool = False
) -> BookSnapshot:
    m = frame.msg
    return BookSnapshot(
        ticker=m.market_ticker,
        market_id=m.market_id,
        conn=conn,
        sid=frame.sid,
        xseq=frame.seq,
        yes=levels(m.yes_dollars_fp, flip=False),
        no=levels(m.no_dollars_fp, flip=yes_price),
        source="ws",
        ts_exch=frame.sending_ts_ms,
        ts_recv=ts_recv,
    )


def delta(frame: ws.OrderbookDelta, conn: int, ts_recv: int, *, yes_price: bool = False) -> BookDelta:
    m = frame.msg
    price = book_price(m.price_dollars)
    if yes_price and m.side == "no":
        price = ONE_DOLLAR - price
    return BookDelta(
        ticker=m.market_ticker,
        market_id=m.market_id,
        conn=conn,
        sid=frame.sid,
        xseq=frame.seq,
        side=m.side,
        price=price,
        delta=signed_count(m.delta_fp),
        ts_exch=m.ts_ms if m.ts_ms is not None else frame.sending_ts_ms,
        ts_recv=ts_recv,
        client_order_id=m.client_order_id,
        subaccount=m.subaccount,
    )


# ---- ticker / trade ---------------------------------------------------------------------------


def ticker(frame: ws.TickerFrame, ts_recv: int) -> Ticker:
    m = frame.msg
    yes_bid = optional_price(m.yes_bid_dollars)
    yes_ask = optional_price(m.yes_ask_dollars)
    return Ticker(
        ticker=m.market_ticker,
        market_id=m.market_id,
        price=optional_price(m.price_dollars),
        # An empty side is reported by Kalshi as bid 0 / ask 1; keep that convention for "".
        yes_bid=0 if yes_bid is None else yes_bid,
        yes_ask=ONE_DOLLAR if yes_ask is None else yes_ask,
        yes_bid_size=count(m.yes_bid_size_fp),
        yes_ask_size=count(m.yes_ask_size_fp),
        last_trade_size=count(m.last_trade_size_fp),
        volume=parse_count(m.volume_fp),  # running totals: not memoised (they rarely repeat)
        open_interest=parse_count(m.open_interest_fp),
        dollar_volume=m.dollar_volume,
        dollar_open_interest=m.dollar_open_interest,
        ts_exch=event_ms(m.ts_ms, m.ts),
        ts_recv=ts_recv,
    )


def trade(frame: ws.TradeFrame, ts_recv: int) -> Trade:
    m = frame.msg
    side = outcome_side(m.taker_outcome_side or m.taker_side, m.taker_book_side, "trade without a taker side")
    return Trade(
        trade_id=m.trade_id,
        ticker=m.market_ticker,
        yes_price=price(m.yes_price_dollars),
        no_price=price(m.no_price_dollars),
        count=count(m.count_fp),
        taker_side=side,
        is_block_trade=m.is_block_trade,
        ts_exch=event_ms(m.ts_ms, m.ts),
        ts_recv=ts_recv,
    )


def rest_trade(t: rest_models.RestTrade, ts_recv: int) -> Trade:
    """A ``/markets/trades`` trade as a bus Trade, source rest (backfilled: the live channel
    missed it). ``ts_exch`` is its ``created_time``. Raises UnitError on a trade without a
    taker side or a time, or a price or count finer than its unit."""
    side = t.outcome_side
    if side is None:
        raise UnitError("trade without a taker side")
    created = rfc3339_ms(t.created_time)
    if created is None:
        raise UnitError("trade without a created_time")
    return Trade(
        trade_id=t.trade_id,
        ticker=t.ticker,
        yes_price=price(t.yes_price_dollars),
        no_price=price(t.no_price_dollars),
        count=count(t.count_fp),
        taker_side=side,
        is_block_trade=t.is_block_trade,
        ts_exch=created,
        ts_recv=ts_recv,
        source="rest",
    )


# ---- lifecycle -----------------------------------------------------------------------------------


def lifecycle(
    frame: ws.MarketLifecycleFrame | ws.MultivariateLifecycleFrame, ts_recv: int
) -> MarketLifecycle:
    m = frame.msg
    meta = m.additional_metadata
    return MarketLifecycle(
        ticker=m.market_ticker,
        event_type=m.event_type,
        event_ticker=(meta.event_ticker or None) if meta is not None else None,
        open_ms=seconds_to_ms(m.open_ts),
        close_ms=seconds_to_ms(m.close_ts),
        result=m.result,
        determination_ms=seconds_to_ms(m.determination_ts),
        settlement_value=optional_price(m.settlement_value),
        settled_ms=seconds_to_ms(m.settled_ts),
        is_deactivated=m.is_deactivated,
        price_ranges=price_ranges(m.price_ranges) if m.price_ranges is not None else None,
        title=meta.title if meta is not None else None,
        yes_sub_title=meta.yes_sub_title if meta is not None else m.yes_sub_title,
        no_sub_title=meta.no_sub_title if meta is not None else None,
        strike_type=m.strike_type if m.strike_type is not None else (meta.strike_type if meta else None),
        floor_strike=strike_text(m.floor_strike),
        cap_strike=strike_text(m.cap_strike),
        ts_exch=frame.sending_ts_ms,
        ts_recv=ts_recv,
    )


_NUMBER = re.compile(rb"-?(0|[1-9][0-9]{0,30})(\.[0-9]{1,18})?([eE][-+]?[0-9]{1,3})?")


def strike_text(raw: msgspec.Raw) -> str | None:
    """A strike as the decimal text Kalshi wrote (a JSON number; exact, never a float)."""
    b = bytes(raw)
    if b == b"null":
        return None
    if not _NUMBER.fullmatch(b):
        raise UnitError(f"strike {b[:40]!r} is not a plain decimal number")
    return b.decode()


def event_lifecycle(frame: ws.EventLifecycleFrame, ts_recv: int) -> EventLifecycle:
    m = frame.msg
    return EventLifecycle(
        event_ticker=m.event_ticker,
        series_ticker=m.series_ticker,
        title=m.title,
        subtitle=m.subtitle,
        collateral_return_type=m.collateral_return_type,
        strike_ms=seconds_to_ms(m.strike_date),
        strike_period=m.strike_period,
        ts_exch=frame.sending_ts_ms,
        ts_recv=ts_recv,
    )


def fee_update(frame: ws.EventFeeUpdateFrame, ts_recv: int) -> FeeUpdate:
    m = frame.msg
    return FeeUpdate(
        event_ticker=m.event_ticker,
        fee_type_override=m.fee_type_override,
        fee_multiplier_ppm_override=fee_multiplier_ppm(bytes(m.fee_multiplier_override)),
        ts_exch=frame.sending_ts_ms,
        ts_recv=ts_recv,
    )


# ---- REST -> bus ---------------------------------------------------------------------------------


def fee_terms(
    series: rest_models.Series | None, type_override: str | None = None, ppm_override: int | None = None
) -> tuple[str, int]:
    """The fee type and multiplier (ppm) an event's markets pay: the event's overrides win over
    its series' terms. Raises UnitError when the series' multiplier is unreadable."""
    fee_type, ppm = "", MONEY_SCALE
    if series is not None:
        fee_type = series.fee_type
        ppm = fee_multiplier_ppm(bytes(series.fee_multiplier)) or MONEY_SCALE
    return (type_override or fee_type, ppm if ppm_override is None else ppm_override)


def market_meta(
    market: rest_models.Market,
    ts_recv: int,
    *,
    series_ticker: str,
    category: str = "",
    fee_type: str = "",
    fee_multiplier: int = MONEY_SCALE,
    event_title: str = "",
) -> MarketMeta:
    """A REST market (plus what its event/series say) as the bus's MarketMeta."""
    return MarketMeta(
        ticker=market.ticker,
        event_ticker=market.event_ticker,
        series_ticker=series_ticker,
        title=market.title or event_title,
        yes_sub_title=market.yes_sub_title,
        no_sub_title=market.no_sub_title,
        status=market.status,
        market_type=market.market_type,
        category=category,
        open_ms=rfc3339_ms(market.open_time),
        close_ms=rfc3339_ms(market.close_time),
        expiration_ms=rfc3339_ms(market.expected_expiration_time or market.latest_expiration_time),
        price_ranges=price_ranges(market.price_ranges),
        fee_type=fee_type,
        fee_multiplier_ppm=fee_multiplier,
        result=market.result,
        ts_exch=rfc3339_ms(market.updated_time),
        ts_recv=ts_recv,
    )
