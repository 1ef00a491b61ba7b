"""This account's private-channel kinds -> rows (pure): fills, position snapshots, order
states and order-group events.

Kept apart from :mod:`.rows` (market data) so each stays one screen of mappers; :mod:`.rows`
merges these into its MAPPERS. Rows are built by field name (:mod:`shared.store.rows`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from services.writer.rowtime import RowSink, opt_us, times_us
from shared.messages import Fill, MarketPosition, OrderGroupUpdate, UserOrder
from shared.store.rows import FillRow, OrderGroupRow, OrderRow, PositionRow, builder

_fill_of = builder(FillRow)
_position_of = builder(PositionRow)
_order_of = builder(OrderRow)
_order_group_of = builder(OrderGroupRow)


def _fill(b: RowSink, m: Fill) -> None:
    ts, recv = times_us(m)
    row = _fill_of(
        trade_id=m.trade_id, order_id=m.order_id, ticker=m.ticker, is_taker=m.is_taker, side=m.side,
        yes_price=m.yes_price, count=m.count, fee=m.fee, action=m.action,
        post_position=m.post_position, client_order_id=m.client_order_id, ts=ts, recv=recv,
        subaccount=m.subaccount,
    )  # fmt: skip
    b.rows["fills"].append(row)


def _position(b: RowSink, m: MarketPosition) -> None:
    ts, recv = times_us(m)
    row = _position_of(
        ticker=m.ticker, ts=ts, recv=recv, position=m.position, position_cost=m.position_cost,
        realized_pnl=m.realized_pnl, fees_paid=m.fees_paid, volume=m.volume, pub=m.pub,
        epoch=m.epoch, seq=m.seq,
    )  # fmt: skip
    b.rows["positions"].append(row)


def _order(b: RowSink, m: UserOrder) -> None:
    ts, recv = times_us(m)
    row = _order_of(
        order_id=m.order_id, ts=ts, status=m.status, yes_price=m.yes_price, fill_count=m.fill_count,
        remaining_count=m.remaining_count, recv=recv, ticker=m.ticker, side=m.side,
        initial_count=m.initial_count, taker_fill_cost=m.taker_fill_cost,
        maker_fill_cost=m.maker_fill_cost, taker_fees=m.taker_fees, maker_fees=m.maker_fees,
        client_order_id=m.client_order_id, order_group_id=m.order_group_id,
        self_trade_prevention_type=m.self_trade_prevention_type, created_ts=opt_us(m.created_ms),
        expiration_ts=opt_us(m.expiration_ms), last_update_reason=m.last_update_reason,
        subaccount=m.subaccount,
    )  # fmt: skip
    b.rows["orders"].append(row)


def _order_group(b: RowSink, m: OrderGroupUpdate) -> None:
    ts, recv = times_us(m)
    row = _order_group_of(
        order_group_id=m.order_group_id, event_type=m.event_type, ts=ts, recv=recv,
        contracts_limit=m.contracts_limit,
    )  # fmt: skip
    b.rows["order_groups"].append(row)


ACCOUNT_MAPPERS: dict[type[Any], Callable[[Any, Any], None]] = {
    Fill: _fill,
    MarketPosition: _position,
    UserOrder: _order,
    OrderGroupUpdate: _order_group,
}
