"""Kalshi WebSocket v2 wire schema: one msgspec Struct per message, typed decoders.

Server frames are JSON objects tagged by ``type``; :data:`FRAME_DECODER` decodes
any known frame into its Struct in one pass. Unknown fields are ignored (Kalshi
adds fields without notice). A frame whose ``type`` is not one of ours fails the
union decode; :func:`~shared.kalshi.envelope.frame_type` then tells an unknown type from a malformed
frame, so the two can be counted apart (:mod:`shared.kalshi.envelope`).

Prices and counts stay the wire's decimal strings here; :mod:`shared.kalshi.parse`
turns them into exact integers. Field names are Kalshi's, including deprecated
ones we still read as fallbacks (``taker_side``).

Client commands (:class:`WsCommand`) are encoded with :data:`COMMAND_ENCODER`;
``omit_defaults`` keeps unset optional params off the wire, because Kalshi
rejects some combinations (``market_ticker`` with ``market_tickers``).
"""

from __future__ import annotations

from typing import Literal

import msgspec

from shared.messages import Int64

from .ws_base import Frame, Seconds, Seq, Sid, Side
from .ws_private import (
    FillFrame,
    MarketPositionFrame,
    OrderGroupFrame,
    QuoteAccepted,
    QuoteCreated,
    QuoteExecuted,
    RfqCreated,
    RfqDeleted,
    UserOrderFrame,
)

Level = tuple[str, str]  # (price_dollars, count_fp)

#: Error codes after which the subscription is dead and must be made again.
TERMINAL_ERRORS = frozenset({10, 25})
#: Codes Kalshi retired ("not emitted, number reserved"): counted apart, never acted on.
RETIRED_ERRORS = frozenset({6, 16, 17})
#: Every code Kalshi's current spec defines (terminal ones included, retired ones not).
KNOWN_ERRORS = frozenset(range(1, 29)) - RETIRED_ERRORS


def error_class(code: int) -> str:
    """``terminal`` (resubscribe now), ``known`` (the command failed), ``retired`` or ``unknown``
    (counted and logged once, never acted on as terminal)."""
    if code in TERMINAL_ERRORS:
        return "terminal"
    if code in KNOWN_ERRORS:
        return "known"
    return "retired" if code in RETIRED_ERRORS else "unknown"


# ---- replies to commands --------------------------------------------------------------------


class SubscribedMsg(msgspec.Struct, frozen=True):
    channel: str
    sid: Sid


class Subscribed(Frame, frozen=True, tag="subscribed"):
    msg: SubscribedMsg
    id: Sid = 0


class Unsubscribed(Frame, frozen=True, tag="unsubscribed"):
    sid: Sid
    id: Sid = 0
    seq: Seq | None = None


class SubscriptionInfo(msgspec.Struct, frozen=True):
    channel: str
    sid: Sid


class OkMsg(msgspec.Struct, frozen=True):
    market_tickers: list[str] | None = None
    market_ids: list[str] | None = None


class Ok(Frame, frozen=True, tag="ok"):
    """Reply to update_subscription (``msg`` an object) or list_subscriptions (``msg`` a list)."""

    id: Sid = 0
    sid: Sid | None = None
    seq: Seq | None = None
    msg: list[SubscriptionInfo] | OkMsg | None = None


class ErrorMsg(msgspec.Struct, frozen=True):
    code: Int64
    msg: str = ""
    market_ticker: str | None = None
    #: Replaced by ``market_tickers`` in the newer spec; still read from older servers.
    market_id: str | None = None
    market_tickers: list[str] | None = None
    #: Not in Kalshi's schema; read when a server names the subscription inside ``msg``.
    sid: Sid | None = None


class Error(Frame, frozen=True, tag="error"):
    """A failed command (``id`` set) or an error on a live subscription (``sid``, and then
    possibly the ``seq`` it takes in that sid's sequence)."""

    msg: ErrorMsg
    id: Sid = 0
    sid: Sid | None = None
    seq: Seq | None = None


# ---- order book (seq-checked) ---------------------------------------------------------------


class SnapshotMsg(msgspec.Struct, frozen=True):
    market_ticker: str
    market_id: str = ""
    #: A side's key is absent when that side is empty.
    yes_dollars_fp: list[Level] = []
    no_dollars_fp: list[Level] = []


class OrderbookSnapshot(Frame, frozen=True, tag="orderbook_snapshot"):
    sid: Sid
    seq: Seq
    msg: SnapshotMsg
    sending_ts_ms: Int64 | None = None
    #: The id of the ``get_snapshot`` this answers (December spec); 0 for a subscription's own.
    id: Sid = 0


class DeltaMsg(msgspec.Struct, frozen=True):
    market_ticker: str
    price_dollars: str
    delta_fp: str
    side: Side
    market_id: str = ""
    ts_ms: Int64 | None = None
    client_order_id: str | None = None
    subaccount: Int64 | None = None


class OrderbookDelta(Frame, frozen=True, tag="orderbook_delta"):
    sid: Sid
    seq: Seq
    msg: DeltaMsg
    sending_ts_ms: Int64 | None = None


# ---- ticker / trade --------------------------------------------------------------------------


class TickerMsg(msgspec.Struct, frozen=True):
    market_ticker: str
    market_id: str = ""
    #: Last trade price; "" before the first trade.
    price_dollars: str = ""
    yes_bid_dollars: str = ""
    yes_ask_dollars: str = ""
    yes_bid_size_fp: str = "0.00"
    yes_ask_size_fp: str = "0.00"
    last_trade_size_fp: str = "0.00"
    volume_fp: str = "0.00"
    open_interest_fp: str = "0.00"
    dollar_volume: Int64 = 0
    dollar_open_interest: Int64 = 0
    ts: Seconds | None = None
    ts_ms: Int64 | None = None


class TickerFrame(Frame, frozen=True, tag="ticker"):
    sid: Sid
    msg: TickerMsg
    sending_ts_ms: Int64 | None = None


class TradeMsg(msgspec.Struct, frozen=True):
    trade_id: str
    market_ticker: str
    yes_price_dollars: str
    no_price_dollars: str
    count_fp: str
    taker_outcome_side: Side | None = None
    taker_side: Side | None = None
    taker_book_side: Literal["bid", "ask"] | None = None
    is_block_trade: bool = False
    ts: Seconds | None = None
    ts_ms: Int64 | None = None


class TradeFrame(Frame, frozen=True, tag="trade"):
    sid: Sid
    msg: TradeMsg
    seq: Seq | None = None
    sending_ts_ms: Int64 | None = None


# ---- lifecycle -------------------------------------------------------------------------------


class PriceRangeWire(msgspec.Struct, frozen=True):
    start: str
    end: str
    step: str


class AdditionalMetadata(msgspec.Struct, frozen=True):
    name: str = ""
    title: str = ""
    yes_sub_title: str = ""
    no_sub_title: str = ""
    rules_primary: str = ""
    rules_secondary: str = ""
    can_close_early: bool | None = None
    event_ticker: str = ""
    expected_expiration_ts: Seconds | None = None
    strike_type: str | None = None


class LifecycleMsg(msgspec.Struct, frozen=True):
    market_ticker: str
    event_type: str
    exchange_index: Int64 | None = None
    open_ts: Seconds | None = None
    close_ts: Seconds | None = None
    result: str | None = None
    determination_ts: Seconds | None = None
    settlement_value: str | None = None
    settled_ts: Seconds | None = None
    is_deactivated: bool | None = None
    price_level_structure: str | None = None
    price_ranges: list[PriceRangeWire] | None = None
    yes_sub_title: str | None = None
    strike_type: str | None = None
    #: ``metadata_updated``: JSON numbers, kept raw so they are carried exactly, never as floats.
    floor_strike: msgspec.Raw = msgspec.Raw(b"null")
    cap_strike: msgspec.Raw = msgspec.Raw(b"null")
    additional_metadata: AdditionalMetadata | None = None


class MarketLifecycleFrame(Frame, frozen=True, tag="market_lifecycle_v2"):
    sid: Sid
    msg: LifecycleMsg
    seq: Seq | None = None
    sending_ts_ms: Int64 | None = None


class MultivariateLifecycleFrame(Frame, frozen=True, tag="multivariate_market_lifecycle"):
    sid: Sid
    msg: LifecycleMsg
    seq: Seq | None = None
    sending_ts_ms: Int64 | None = None


class EventLifecycleMsg(msgspec.Struct, frozen=True):
    event_ticker: str
    series_ticker: str = ""
    title: str = ""
    subtitle: str = ""
    collateral_return_type: str = ""
    exchange_index: Int64 | None = None
    strike_date: Seconds | None = None
    strike_period: str | None = None


class EventLifecycleFrame(Frame, frozen=True, tag="event_lifecycle"):
    sid: Sid
    msg: EventLifecycleMsg
    seq: Seq | None = None
    sending_ts_ms: Int64 | None = None


class FeeUpdateMsg(msgspec.Struct, frozen=True):
    event_ticker: str
    fee_type_override: str | None = None
    #: A JSON number (e.g. ``1`` or ``0.5``): kept raw so it is parsed exactly, never as a float.
    fee_multiplier_override: msgspec.Raw = msgspec.Raw(b"null")


class EventFeeUpdateFrame(Frame, frozen=True, tag="event_fee_update"):
    sid: Sid
    msg: FeeUpdateMsg
    seq: Seq | None = None
    sending_ts_ms: Int64 | None = None


#: Every server frame Struct, in decode-union order.
FRAME_TYPES: tuple[type[msgspec.Struct], ...] = (
    OrderbookDelta,
    OrderbookSnapshot,
    TickerFrame,
    TradeFrame,
    MarketLifecycleFrame,
    MultivariateLifecycleFrame,
    EventLifecycleFrame,
    EventFeeUpdateFrame,
    Subscribed,
    Unsubscribed,
    Ok,
    Error,
    FillFrame,
    MarketPositionFrame,
    UserOrderFrame,
    OrderGroupFrame,
    RfqCreated,
    RfqDeleted,
    QuoteCreated,
    QuoteAccepted,
    QuoteExecuted,
)

ServerFrame = (
    OrderbookDelta
    | OrderbookSnapshot
    | TickerFrame
    | TradeFrame
    | MarketLifecycleFrame
    | MultivariateLifecycleFrame
    | EventLifecycleFrame
    | EventFeeUpdateFrame
    | Subscribed
    | Unsubscribed
    | Ok
    | Error
    | FillFrame
    | MarketPositionFrame
    | UserOrderFrame
    | OrderGroupFrame
    | RfqCreated
    | RfqDeleted
    | QuoteCreated
    | QuoteAccepted
    | QuoteExecuted
)

FRAME_DECODER: msgspec.json.Decoder[ServerFrame] = msgspec.json.Decoder(ServerFrame)

#: ``type`` tag of each frame Struct, and every tag :data:`FRAME_DECODER` knows.
TYPE_NAMES: dict[type, str] = {t: t.__struct_config__.tag for t in FRAME_TYPES}  # type: ignore[misc]
KNOWN_TYPES = frozenset(TYPE_NAMES.values())


# ---- client commands --------------------------------------------------------------------------


class SubscribeParams(msgspec.Struct, frozen=True, omit_defaults=True):
    channels: list[str]
    market_tickers: list[str] | None = None
    send_initial_snapshot: bool = False
    use_yes_price: bool = False


class UnsubscribeParams(msgspec.Struct, frozen=True):
    sids: list[int]


UpdateAction = Literal["add_markets", "delete_markets", "get_snapshot"]


class UpdateParams(msgspec.Struct, frozen=True, omit_defaults=True):
    """Kalshi takes the subscription as ``sids`` (a list of one) or as ``sid``; kxfeed sends
    ``sids``, and reads either (its contract tests decode the spec's examples)."""

    action: UpdateAction
    sids: list[int] | None = None
    sid: Sid | None = None
    market_tickers: list[str] | None = None
    send_initial_snapshot: bool = False


class WsCommand(msgspec.Struct, frozen=True, omit_defaults=True):
    id: Sid
    cmd: Literal["subscribe", "unsubscribe", "update_subscription", "list_subscriptions"]
    params: SubscribeParams | UnsubscribeParams | UpdateParams | None = None


COMMAND_ENCODER = msgspec.json.Encoder()


def encode_command(cmd: WsCommand) -> str:
    """A command as the text frame to send (Kalshi expects text, not binary)."""
    return COMMAND_ENCODER.encode(cmd).decode()
