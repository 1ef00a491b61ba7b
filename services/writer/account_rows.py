"""This account's private-channel kinds -> rows (pure): fills and position snapshots.

Kept apart from :mod:`.rows` (market data) so each stays one screen of mappers; :mod:`.rows`
merges these into its MAPPERS. Rows are built by field name (:mod:`shared.store.rows`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from services.writer.rowtime import RowSink, times_us
from shared.messages import Fill, MarketPosition
from shared.store.rows import FillRow, PositionRow, builder

_fill_of = builder(FillRow)
_position_of = builder(PositionRow)


def _fill(b: RowSink, m: Fill) -> None:
    ts, recv = times_us(m)
    row = _fill_of(
        trade_id=m.trade_id, order_id=m.order_id, ticker=m.ticker, is_taker=m.is_taker, side=m.side,
        yes_price=m.yes_price, count=m.count, fee=m.fee, action=m.action,
        post_position=m.post_position, client_order_id=m.client_order_id, ts=ts, recv=recv,
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


ACCOUNT_MAPPERS: dict[type[Any], Callable[[Any, Any], None]] = {
    Fill: _fill,
    MarketPosition: _position,
}
