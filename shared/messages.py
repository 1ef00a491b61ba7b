"""The bus schema: every message any worker publishes, one tagged union.

On the wire a bus message is two ZeroMQ frames: ``topic`` and ``payload``. The
payload is a msgpack *array* of one or more messages of the same topic (a batch;
a single message is a batch of one), each encoded ``array_like``: a positional
array whose first element is the kind tag. Decode a payload with
:data:`BATCH_DECODER` (or ``msgspec.msgpack.Decoder(list[Message])``).

Every message ends with the same header (keyword-only, so it sits after the
kind's own fields): ``pub`` (publisher id), ``epoch`` (publisher start, ns),
``seq`` (per publisher, per kind, from 1), ``ts_exch`` (exchange time in ms, when
known) and ``ts_recv`` (when kxfeed received the data, ns). The publisher stamps
``pub``/``epoch``/``seq``; the producer sets the timestamps.

Units: prices in $0.0001, counts in hundredths of a contract, money in
micro-dollars (see :mod:`shared.units`); times in ms unless the name says ns.
NO-side book prices are always NO prices (the connector normalises Kalshi's
``use_yes_price`` mode).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import msgspec

# The header and the schema's types live in message_header, the account's messages in
# messages_account; importers take them all from here.
from shared.message_header import DECODE_ERRORS, INT64_MAX, INT64_MIN, Header, Int64, Side, Source  # noqa: F401
from shared.messages_account import Fill, MarketPosition, OrderGroupUpdate, UserOrder
from shared.messages_odds import BookOdds, Odds, OddsPrice  # noqa: F401
from shared.messages_system import Control, Heartbeat, WorkerEvent

_Header = Header


class PriceRange(msgspec.Struct, frozen=True, array_like=True):
    """A band of the price ladder: prices ``start..end`` step ``step`` (price units)."""

    start: Int64
    end: Int64
    step: Int64


Level = tuple[Int64, Int64]  # (price, size)
#: What makes two poll snapshots of one market "the same": :meth:`PollSnapshot.content`.
PollContent = tuple[str, int | None, int | None, int, int, int | None, int, int]


class BookSnapshot(_Header, frozen=True, tag="snap"):
    """A full book. ``conn`` identifies the WS connection, ``xseq`` is Kalshi's per-sid seq
    (0 for REST snapshots, which carry none)."""

    ticker: str
    market_id: str
    conn: Int64
    sid: Int64
    xseq: Int64
    yes: list[Level]
    no: list[Level]
    source: Source = "ws"


class _BookDeltaFields(_Header, frozen=True):
    ticker: str
    market_id: str
    conn: Int64
    sid: Int64
    xseq: Int64
    side: Side
    price: Int64
    delta: Int64


class BookDelta(_BookDeltaFields, frozen=True, kw_only=True, tag="delta"):
    """``client_order_id``/``subaccount``: set when this account's own order made the change.
    Added after the header (kw_only fields of a subclass go last), optional, so an older,
    shorter payload still decodes positionally."""

    client_order_id: str | None = None
    subaccount: Int64 | None = None


class BookState(_Header, frozen=True, tag="bookstate"):
    """VALID/INVALID transition of one book; ``reason`` is empty when valid."""

    ticker: str
    valid: bool
    reason: str = ""
    conn: Int64 = 0
    sid: Int64 = 0
    xseq: Int64 = 0
    durable: ClassVar[bool] = False


class Ticker(_Header, frozen=True, tag="ticker"):
    ticker: str
    market_id: str
    price: Int64 | None
    yes_bid: Int64
    yes_ask: Int64
    yes_bid_size: Int64
    yes_ask_size: Int64
    last_trade_size: Int64
    volume: Int64
    open_interest: Int64
    dollar_volume: Int64
    dollar_open_interest: Int64


class _TradeFields(_Header, frozen=True):
    """Trade's fields as first published (a base only: not a bus kind of its own)."""

    trade_id: str
    ticker: str
    yes_price: Int64
    no_price: Int64
    count: Int64
    taker_side: Side
    is_block_trade: bool = False


class Trade(_TradeFields, frozen=True, kw_only=True, tag="trade"):
    """One trade. ``source`` is "ws" from the live channel, "rest" when the gap filler
    backfilled it from ``/markets/trades`` after trades may have been missed.

    ``source`` is keyword-only so it sits after the header, the LAST element of the
    positional array: a payload from before it (one element shorter) still decodes, as "ws".
    A plain field would land before the header and shift it.
    """

    source: Source = "ws"


class _MarketLifecycleFields(_Header, frozen=True):
    ticker: str
    event_type: str
    event_ticker: str | None = None
    open_ms: Int64 | None = None
    close_ms: Int64 | None = None
    result: str | None = None
    determination_ms: Int64 | None = None
    settlement_value: Int64 | None = None
    settled_ms: Int64 | None = None
    is_deactivated: bool | None = None
    price_ranges: list[PriceRange] | None = None
    title: str | None = None
    yes_sub_title: str | None = None
    no_sub_title: str | None = None


class MarketLifecycle(_MarketLifecycleFields, frozen=True, kw_only=True, tag="lifecycle"):
    """One ``market_lifecycle_v2`` event; fields not carried by that event type are None.
    The strikes (``metadata_updated``; decimal text exactly as Kalshi sent the number) came
    later: after the header, optional, so older payloads still decode positionally."""

    strike_type: str | None = None
    floor_strike: str | None = None
    cap_strike: str | None = None


class EventLifecycle(_Header, frozen=True, tag="evlifecycle"):
    event_ticker: str
    series_ticker: str
    title: str
    subtitle: str = ""
    collateral_return_type: str = ""
    strike_ms: Int64 | None = None
    strike_period: str | None = None
    topic_field: ClassVar[str] = "event_ticker"


class FeeUpdate(_Header, frozen=True, tag="fee"):
    """``event_fee_update``: None clears an override. Multiplier in parts per million."""

    event_ticker: str
    fee_type_override: str | None
    fee_multiplier_ppm_override: Int64 | None
    topic_field: ClassVar[str] = "event_ticker"


class _MarketMetaFields(_Header, frozen=True):
    ticker: str
    event_ticker: str
    series_ticker: str
    title: str
    yes_sub_title: str
    no_sub_title: str
    status: str
    market_type: str = "binary"
    category: str = ""
    open_ms: Int64 | None = None
    close_ms: Int64 | None = None
    expiration_ms: Int64 | None = None
    price_ranges: list[PriceRange] = []
    fee_type: str = ""
    fee_multiplier_ppm: Int64 = 1_000_000
    result: str = ""


class MarketMeta(_MarketMetaFields, frozen=True, kw_only=True, tag="meta"):
    """The strikes (from ``metadata_updated``, decimal text as Kalshi sent it) came later: after
    the header, optional, so older payloads still decode positionally."""

    strike_type: str | None = None
    floor_strike: str | None = None
    cap_strike: str | None = None


class PollSnapshot(_Header, frozen=True, tag="poll"):
    """Top of book and stats from REST polling (``source`` = poll), or fallback polling."""

    ticker: str
    status: str
    yes_bid: Int64 | None
    yes_ask: Int64 | None
    yes_bid_size: Int64
    yes_ask_size: Int64
    last_price: Int64 | None
    volume: Int64
    open_interest: Int64
    fallback: bool = False

    def content(self) -> PollContent:
        """The poller publishes, and the writer stores, a market's snapshot only when this changes."""
        return (
            self.status,
            self.yes_bid,
            self.yes_ask,
            self.yes_bid_size,
            self.yes_ask_size,
            self.last_price,
            self.volume,
            self.open_interest,
        )


class Gap(_Header, frozen=True, tag="gap"):
    """A sequence gap on one subscription and, later, how it was recovered.

    ``status`` is "open" when detected; a second Gap with the same (conn, sid,
    expected) and status "recovered" closes it.
    """

    conn: Int64
    sid: Int64
    expected: Int64
    received: Int64
    tickers: list[str]
    reason: str
    status: Literal["open", "recovered"] = "open"
    method: str = ""
    detected_ms: Int64 = 0
    recovered_ms: Int64 | None = None

    def topic(self) -> str:
        suffix = self.tickers[0] if len(self.tickers) == 1 else f"sid-{self.conn}-{self.sid}"
        return f"gap.{suffix}"


class TopOfBook(_Header, frozen=True, tag="tob"):
    """Best prices of a book. ``mid_x2`` = yes_bid + yes_ask (twice the mid, exact);
    it and ``spread`` are None when either side is empty."""

    ticker: str
    xseq: Int64
    valid: bool
    yes_bid: Int64 | None
    yes_bid_size: Int64
    yes_ask: Int64 | None
    yes_ask_size: Int64
    no_bid: Int64 | None
    no_ask: Int64 | None
    mid_x2: Int64 | None
    spread: Int64 | None
    durable: ClassVar[bool] = False


class Depth(_Header, frozen=True, tag="depth"):
    """Top N levels per side, best first."""

    ticker: str
    xseq: Int64
    valid: bool
    yes: list[Level]
    no: list[Level]
    durable: ClassVar[bool] = False


class Signal(_Header, frozen=True, tag="signal"):
    """A trading signal: ``edge`` and ``fees`` in micro-dollars per contract bundle."""

    ticker: str
    strategy: str
    side: Side
    price: Int64
    size: Int64
    fair_ppm: Int64
    edge: Int64
    fees: Int64
    legs: list[str] = []
    detail: str = ""


Message = (
    BookSnapshot
    | BookDelta
    | BookState
    | Ticker
    | Trade
    | Fill
    | MarketPosition
    | UserOrder
    | OrderGroupUpdate
    | MarketLifecycle
    | EventLifecycle
    | FeeUpdate
    | MarketMeta
    | PollSnapshot
    | Gap
    | TopOfBook
    | Depth
    | Signal
    | Odds
    | Heartbeat
    | WorkerEvent
    | Control
)

MESSAGE_TYPES: tuple[type[_Header], ...] = (
    BookSnapshot,
    BookDelta,
    BookState,
    Ticker,
    Trade,
    Fill,
    MarketPosition,
    UserOrder,
    OrderGroupUpdate,
    MarketLifecycle,
    EventLifecycle,
    FeeUpdate,
    MarketMeta,
    PollSnapshot,
    Gap,
    TopOfBook,
    Depth,
    Signal,
    Odds,
    Heartbeat,
    WorkerEvent,
    Control,
)

#: kind tag -> class, e.g. "delta" -> BookDelta
KINDS: dict[str, type[_Header]] = {t.__struct_config__.tag: t for t in MESSAGE_TYPES}  # type: ignore[misc]

#: Class -> the field its topic is ``"<kind>.<field>"`` of, for every class whose topic is that
#: (Gap's is not): lets a publisher build topics without a method call per message.
TOPIC_FIELDS: dict[type[_Header], str] = {t: t.topic_field for t in MESSAGE_TYPES if t.topic is _Header.topic}

BATCH_ENCODER = msgspec.msgpack.Encoder()
BATCH_DECODER: msgspec.msgpack.Decoder[list[Message]] = msgspec.msgpack.Decoder(list[Message])
JSON_ENCODER = msgspec.json.Encoder()


def kind_of(msg: Message) -> str:
    return type(msg).__struct_config__.tag  # type: ignore[return-value]


def to_jsonable(msg: Message) -> dict[str, Any]:
    """A message as a dict with field names and ``kind``, for humans and JSON lines."""
    out: dict[str, Any] = {"kind": kind_of(msg)}
    out.update(msgspec.to_builtins(msgspec.structs.asdict(msg)))
    return out


def json_schema() -> dict[str, Any]:
    """The bus schema as JSON Schema, generated from the Structs themselves."""
    schema: dict[str, Any] = msgspec.json.schema(list[Message])
    return schema
