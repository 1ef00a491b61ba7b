"""Wire -> bus for this account's private channels (pure): fills, market positions, order
updates (``user_order``) and order-group events. Same rules as :mod:`shared.kalshi.parse`,
which re-exports these: exact integer units through :mod:`shared.kalshi.numbers` (a value
finer than its unit raises UnitError, one outside int64 its RangeError; the caller counts the
frame as unusable), never a float. Also the side and time helpers both modules use.
"""

from __future__ import annotations

from typing import Literal

from shared.kalshi.numbers import parse_count, parse_money, parse_price, rfc3339_ms, seconds_to_ms
from shared.kalshi.ws_base import Side
from shared.kalshi.ws_private import FillFrame, MarketPositionFrame, OrderGroupFrame, UserOrderFrame
from shared.messages import Fill, MarketPosition, OrderGroupUpdate, UserOrder
from shared.units import UnitError


def event_ms(ts_ms: int | None, ts: int | None) -> int | None:
    # Kalshi's frames carry milliseconds (``ts_ms``) now; older ones only whole seconds.
    return ts_ms if ts_ms is not None else seconds_to_ms(ts)


def outcome_side(outcome: Side | None, book_side: Literal["bid", "ask"] | None, missing: str) -> Side:
    # Frames without the outcome name the book side instead: bid is outcome YES, ask outcome NO.
    if outcome is not None:
        return outcome
    if book_side is None:
        raise UnitError(missing)
    return "yes" if book_side == "bid" else "no"


def fill(frame: FillFrame, ts_recv: int) -> Fill:
    m = frame.msg
    side = outcome_side(m.outcome_side or m.side, m.book_side, "fill without a side")
    return Fill(
        trade_id=m.trade_id,
        order_id=m.order_id,
        ticker=m.market_ticker,
        is_taker=m.is_taker,
        side=side,
        yes_price=parse_price(m.yes_price_dollars),
        count=parse_count(m.count_fp),
        fee=parse_money(m.fee_cost, signed=False),
        action=m.action,
        post_position=parse_count(m.post_position_fp, signed=True),
        client_order_id=m.client_order_id,
        subaccount=m.subaccount,
        ts_exch=event_ms(m.ts_ms, m.ts),
        ts_recv=ts_recv,
    )


def market_position(frame: MarketPositionFrame, ts_recv: int) -> MarketPosition:
    m = frame.msg
    return MarketPosition(
        ticker=m.market_ticker,
        position=parse_count(m.position_fp, signed=True),
        position_cost=parse_money(m.position_cost_dollars),
        realized_pnl=parse_money(m.realized_pnl_dollars),
        fees_paid=parse_money(m.fees_paid_dollars),
        volume=parse_count(m.volume_fp),
        ts_exch=frame.sending_ts_ms,
        ts_recv=ts_recv,
    )


def _ms(ts_ms: int | None, rfc3339: str | None) -> int | None:
    # The *_ts_ms fields are current; the RFC 3339 ones deprecated but still sent.
    return ts_ms if ts_ms is not None else rfc3339_ms(rfc3339)


def _money_or_none(text: str) -> int | None:
    # Absent ("") is "not said", not zero: the earlier spec's user_order had no fees at all.
    return parse_money(text) if text else None


def user_order(frame: UserOrderFrame, ts_recv: int) -> UserOrder:
    """An order's state after a change. Raises UnitError on an order without a side, or a
    price, count or amount that is empty, finer than its unit or outside int64."""
    m = frame.msg
    side = outcome_side(m.outcome_side or m.side, m.book_side, "order without a side")
    created = _ms(m.created_ts_ms, m.created_time)
    updated = _ms(m.last_updated_ts_ms, m.last_update_time)
    return UserOrder(
        order_id=m.order_id,
        ticker=m.ticker,
        status=m.status,
        side=side,
        yes_price=parse_price(m.yes_price_dollars),
        fill_count=parse_count(m.fill_count_fp),
        remaining_count=parse_count(m.remaining_count_fp),
        initial_count=parse_count(m.initial_count_fp),
        taker_fill_cost=parse_money(m.taker_fill_cost_dollars),
        maker_fill_cost=parse_money(m.maker_fill_cost_dollars),
        taker_fees=_money_or_none(m.taker_fees_dollars),
        maker_fees=_money_or_none(m.maker_fees_dollars),
        client_order_id=m.client_order_id or None,
        order_group_id=m.order_group_id or None,
        self_trade_prevention_type=m.self_trade_prevention_type or None,
        created_ms=created,
        expiration_ms=_ms(m.expiration_ts_ms, m.expiration_time),
        last_update_reason=m.last_update_reason or None,
        subaccount=m.subaccount_number,
        ts_exch=updated if updated is not None else created,
        ts_recv=ts_recv,
    )


def order_group(frame: OrderGroupFrame, ts_recv: int) -> OrderGroupUpdate:
    """Raises UnitError on a contracts limit finer than hundredths or outside int64."""
    m = frame.msg
    limit = m.contracts_limit_fp
    return OrderGroupUpdate(
        order_group_id=m.order_group_id,
        event_type=m.event_type,
        contracts_limit=parse_count(limit) if limit else None,
        ts_exch=m.ts_ms,
        ts_recv=ts_recv,
    )
