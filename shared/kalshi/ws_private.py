"""Kalshi WebSocket frames of this account's activity: ``fill``, ``market_position``, and those
the December AsyncAPI made kxfeed decode: ``user_order`` (user_orders), ``order_group_updates``
and the ``communications`` RFQ/quote events. Same conventions as :mod:`shared.kalshi.ws`: the wire's strings
stay strings, unknown fields are ignored, integers bounded where decoded. Their base carries
the same tag field, so :data:`shared.kalshi.ws.FRAME_DECODER`'s union decodes them in the same
pass as every other frame.

``user_order`` has no ``seq``; the others carry a per-sid ``seq`` (optional here while Kalshi
rolls it out), checked like the other sequenced channels.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from shared.messages import Int64

from .ws_base import Frame, Seconds, Seq, Sid, Side


class FillMsg(msgspec.Struct, frozen=True):
    trade_id: str
    order_id: str
    market_ticker: str
    yes_price_dollars: str
    count_fp: str
    is_taker: bool = False
    outcome_side: Side | None = None
    #: Deprecated by Kalshi in favour of ``outcome_side``; read when that is absent.
    side: Side | None = None
    book_side: Literal["bid", "ask"] | None = None
    fee_cost: str = "0"
    #: Deprecated by Kalshi ("buy", "sell", newer "sell_partial", "sell_to_close", "").
    action: str = ""
    post_position_fp: str = "0.00"
    client_order_id: str | None = None
    ts: Seconds | None = None
    ts_ms: Int64 | None = None
    subaccount: Int64 | None = None


class FillFrame(Frame, frozen=True, tag="fill"):
    sid: Sid
    msg: FillMsg
    sending_ts_ms: Int64 | None = None


class MarketPositionMsg(msgspec.Struct, frozen=True):
    market_ticker: str
    position_fp: str = "0.00"
    position_cost_dollars: str = "0"
    realized_pnl_dollars: str = "0"
    fees_paid_dollars: str = "0"
    volume_fp: str = "0.00"


class MarketPositionFrame(Frame, frozen=True, tag="market_position"):
    sid: Sid
    msg: MarketPositionMsg
    sending_ts_ms: Int64 | None = None


class UserOrderMsg(msgspec.Struct, frozen=True):
    order_id: str
    ticker: str
    status: str
    user_id: str = ""
    exchange_index: Int64 | None = None
    outcome_side: Literal["yes", "no"] | None = None
    book_side: Literal["bid", "ask"] | None = None
    #: Deprecated by Kalshi in favour of ``outcome_side``/``book_side``; read as fallbacks.
    side: Literal["yes", "no"] | None = None
    is_yes: bool | None = None
    yes_price_dollars: str = ""
    fill_count_fp: str = ""
    remaining_count_fp: str = ""
    initial_count_fp: str = ""
    taker_fill_cost_dollars: str = ""
    maker_fill_cost_dollars: str = ""
    taker_fees_dollars: str = ""
    maker_fees_dollars: str = ""
    client_order_id: str | None = None
    order_group_id: str | None = None
    self_trade_prevention_type: str | None = None
    created_time: str | None = None
    last_update_time: str | None = None
    expiration_time: str | None = None
    expiration_ts_ms: Int64 | None = None
    created_ts_ms: Int64 | None = None
    last_updated_ts_ms: Int64 | None = None
    last_update_reason: str | None = None
    subaccount_number: Int64 | None = None


class UserOrderFrame(Frame, frozen=True, tag="user_order"):
    sid: Sid
    msg: UserOrderMsg


class OrderGroupMsg(msgspec.Struct, frozen=True):
    event_type: str
    order_group_id: str
    ts_ms: Int64 | None = None
    contracts_limit_fp: str | None = None


class OrderGroupFrame(Frame, frozen=True, tag="order_group_updates"):
    sid: Sid
    msg: OrderGroupMsg
    seq: Seq | None = None


class _Communication(Frame, frozen=True):
    """An RFQ or quote event. Its ``msg`` is kept whole (a dozen optional fields that differ
    per event, none of which kxfeed computes with): nothing in it is dropped."""

    sid: Sid
    msg: dict[str, Any]
    seq: Seq | None = None


class RfqCreated(_Communication, frozen=True, tag="rfq_created"):
    pass


class RfqDeleted(_Communication, frozen=True, tag="rfq_deleted"):
    pass


class QuoteCreated(_Communication, frozen=True, tag="quote_created"):
    pass


class QuoteAccepted(_Communication, frozen=True, tag="quote_accepted"):
    pass


class QuoteExecuted(_Communication, frozen=True, tag="quote_executed"):
    pass


COMMUNICATIONS: tuple[type[_Communication], ...] = (
    RfqCreated,
    RfqDeleted,
    QuoteCreated,
    QuoteAccepted,
    QuoteExecuted,
)
