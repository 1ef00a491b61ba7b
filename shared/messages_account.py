"""This account's own messages (private channels, with credentials): fills, positions,
orders, order groups. Part of the bus schema (:mod:`shared.messages`, which re-exports them)."""

from __future__ import annotations

from typing import ClassVar

from shared.message_header import Header, Int64, Side


class _FillFields(Header, frozen=True):
    """Fill's fields as first published (a base only: not a bus kind of its own)."""

    trade_id: str
    order_id: str
    ticker: str
    is_taker: bool
    side: Side
    yes_price: Int64
    count: Int64
    fee: Int64
    action: str = ""
    post_position: Int64 = 0
    client_order_id: str | None = None


class Fill(_FillFields, frozen=True, kw_only=True, tag="fill"):
    """One fill of this account's order (private ``fill`` channel). ``yes_price`` is the YES
    price of the fill whatever ``side``; ``fee`` in micro-dollars; ``post_position`` is the
    signed position in the market after the fill (hundredths, negative = NO contracts);
    ``subaccount`` (added after the header) the subaccount whose order filled, when one was."""

    subaccount: Int64 | None = None


class MarketPosition(Header, frozen=True, tag="position"):
    """This account's position in one market (private ``market_positions`` channel).
    ``position`` signed hundredths (negative = NO); money fields in micro-dollars."""

    ticker: str
    position: Int64
    position_cost: Int64
    realized_pnl: Int64
    fees_paid: Int64
    volume: Int64


class UserOrder(Header, frozen=True, tag="order"):
    """This account's order after one change (private ``user_orders`` channel): its state, not
    the change. ``side`` is the outcome side (buy YES / sell NO = yes); ``yes_price`` the YES
    price whatever the side; counts in hundredths; fill costs and fees in micro-dollars; times
    in ms. ``ts_exch`` is its last update (or its creation)."""

    order_id: str
    ticker: str
    status: str
    side: Side
    yes_price: Int64
    fill_count: Int64
    remaining_count: Int64
    initial_count: Int64
    taker_fill_cost: Int64
    maker_fill_cost: Int64
    #: None when the frame did not say (Kalshi's earlier user_order had no fee fields).
    taker_fees: Int64 | None = None
    maker_fees: Int64 | None = None
    client_order_id: str | None = None
    order_group_id: str | None = None
    self_trade_prevention_type: str | None = None
    created_ms: Int64 | None = None
    expiration_ms: Int64 | None = None
    last_update_reason: str | None = None
    subaccount: Int64 | None = None


class OrderGroupUpdate(Header, frozen=True, tag="ordergroup"):
    """An event of one of this account's order groups (private ``order_group_updates``):
    created, triggered, reset, deleted, limit_updated. ``contracts_limit`` in hundredths
    (set by created and limit_updated only)."""

    order_group_id: str
    event_type: str
    contracts_limit: Int64 | None = None
    topic_field: ClassVar[str] = "order_group_id"
