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

Side = Literal["yes", "no"]
Source = Literal["ws", "rest", "poll", "sim"]


class _Header(msgspec.Struct, frozen=True, kw_only=True, array_like=True, tag=True, omit_defaults=False):
    pub: str = ""
    epoch: int = 0
    seq: int = 0
    ts_exch: int | None = None
    ts_recv: int = 0

    #: Topic suffix field: topic = "<kind>.<value of this field>".
    topic_field: ClassVar[str] = "ticker"
    #: Journaled by durable publishers and stored by the writer.
    durable: ClassVar[bool] = True

    @property
    def kind(self) -> str:
        return type(self).__struct_config__.tag  # type: ignore[return-value]

    def topic(self) -> str:
        return f"{type(self).__struct_config__.tag}.{getattr(self, self.topic_field)}"


class PriceRange(msgspec.Struct, frozen=True, array_like=True):
    """A band of the price ladder: prices ``start..end`` step ``step`` (price units)."""

    start: int
    end: int
    step: int


Level = tuple[int, int]  # (price, size)


class BookSnapshot(_Header, frozen=True, tag="snap"):
    """A full book. ``conn`` identifies the WS connection, ``xseq`` is Kalshi's per-sid seq
    (0 for REST snapshots, which carry none)."""

    ticker: str
    market_id: str
    conn: int
    sid: int
    xseq: int
    yes: list[Level]
    no: list[Level]
    source: Source = "ws"


class BookDelta(_Header, frozen=True, tag="delta"):
    ticker: str
    market_id: str
    conn: int
    sid: int
    xseq: int
    side: Side
    price: int
    delta: int


class BookState(_Header, frozen=True, tag="bookstate"):
    """VALID/INVALID transition of one book; ``reason`` is empty when valid."""

    ticker: str
    valid: bool
    reason: str = ""
    conn: int = 0
    sid: int = 0
    xseq: int = 0
    durable: ClassVar[bool] = False


class Ticker(_Header, frozen=True, tag="ticker"):
    ticker: str
    market_id: str
    price: int | None
    yes_bid: int
    yes_ask: int
    yes_bid_size: int
    yes_ask_size: int
    last_trade_size: int
    volume: int
    open_interest: int
    dollar_volume: int
    dollar_open_interest: int


class Trade(_Header, frozen=True, tag="trade"):
    trade_id: str
    ticker: str
    yes_price: int
    no_price: int
    count: int
    taker_side: Side
    is_block_trade: bool = False


class Fill(_Header, frozen=True, tag="fill"):
    """One fill of this account's order (private ``fill`` channel). ``yes_price`` is the YES
    price of the fill whatever ``side``; ``fee`` in micro-dollars; ``post_position`` is the
    signed position in the market after the fill (hundredths, negative = NO contracts)."""

    trade_id: str
    order_id: str
    ticker: str
    is_taker: bool
    side: Side
    yes_price: int
    count: int
    fee: int
    action: str = ""
    post_position: int = 0
    client_order_id: str | None = None


class MarketPosition(_Header, frozen=True, tag="position"):
    """This account's position in one market (private ``market_positions`` channel).
    ``position`` signed hundredths (negative = NO); money fields in micro-dollars."""

    ticker: str
    position: int
    position_cost: int
    realized_pnl: int
    fees_paid: int
    volume: int


class MarketLifecycle(_Header, frozen=True, tag="lifecycle"):
    """One ``market_lifecycle_v2`` event; fields not carried by that event type are None."""

    ticker: str
    event_type: str
    event_ticker: str | None = None
    open_ms: int | None = None
    close_ms: int | None = None
    result: str | None = None
    determination_ms: int | None = None
    settlement_value: int | None = None
    settled_ms: int | None = None
    is_deactivated: bool | None = None
    price_ranges: list[PriceRange] | None = None
    title: str | None = None
    yes_sub_title: str | None = None
    no_sub_title: str | None = None


class EventLifecycle(_Header, frozen=True, tag="evlifecycle"):
    event_ticker: str
    series_ticker: str
    title: str
    subtitle: str = ""
    collateral_return_type: str = ""
    strike_ms: int | None = None
    strike_period: str | None = None
    topic_field: ClassVar[str] = "event_ticker"


class FeeUpdate(_Header, frozen=True, tag="fee"):
    """``event_fee_update``: None clears an override. Multiplier in parts per million."""

    event_ticker: str
    fee_type_override: str | None
    fee_multiplier_ppm_override: int | None
    topic_field: ClassVar[str] = "event_ticker"


class MarketMeta(_Header, frozen=True, tag="meta"):
    ticker: str
    event_ticker: str
    series_ticker: str
    title: str
    yes_sub_title: str
    no_sub_title: str
    status: str
    market_type: str = "binary"
    category: str = ""
    open_ms: int | None = None
    close_ms: int | None = None
    expiration_ms: int | None = None
    price_ranges: list[PriceRange] = []
    fee_type: str = ""
    fee_multiplier_ppm: int = 1_000_000
    result: str = ""


class PollSnapshot(_Header, frozen=True, tag="poll"):
    """Top of book and stats from REST polling (``source`` = poll), or fallback polling."""

    ticker: str
    status: str
    yes_bid: int | None
    yes_ask: int | None
    yes_bid_size: int
    yes_ask_size: int
    last_price: int | None
    volume: int
    open_interest: int
    fallback: bool = False


class Gap(_Header, frozen=True, tag="gap"):
    """A sequence gap on one subscription and, later, how it was recovered.

    ``status`` is "open" when detected; a second Gap with the same (conn, sid,
    expected) and status "recovered" closes it.
    """

    conn: int
    sid: int
    expected: int
    received: int
    tickers: list[str]
    reason: str
    status: Literal["open", "recovered"] = "open"
    method: str = ""
    detected_ms: int = 0
    recovered_ms: int | None = None

    def topic(self) -> str:
        suffix = self.tickers[0] if len(self.tickers) == 1 else f"sid-{self.conn}-{self.sid}"
        return f"gap.{suffix}"


class TopOfBook(_Header, frozen=True, tag="tob"):
    """Best prices of a book. ``mid_x2`` = yes_bid + yes_ask (twice the mid, exact);
    it and ``spread`` are None when either side is empty."""

    ticker: str
    xseq: int
    valid: bool
    yes_bid: int | None
    yes_bid_size: int
    yes_ask: int | None
    yes_ask_size: int
    no_bid: int | None
    no_ask: int | None
    mid_x2: int | None
    spread: int | None
    durable: ClassVar[bool] = False


class Depth(_Header, frozen=True, tag="depth"):
    """Top N levels per side, best first."""

    ticker: str
    xseq: int
    valid: bool
    yes: list[Level]
    no: list[Level]
    durable: ClassVar[bool] = False


class Signal(_Header, frozen=True, tag="signal"):
    """A trading signal: ``edge`` and ``fees`` in micro-dollars per contract bundle."""

    ticker: str
    strategy: str
    side: Side
    price: int
    size: int
    fair_ppm: int
    edge: int
    fees: int
    legs: list[str] = []
    detail: str = ""


class OddsPrice(msgspec.Struct, frozen=True, array_like=True):
    """One outcome's price at one sportsbook: American odds (+150, -120; |odds| >= 100)."""

    name: str
    american: int


class BookOdds(msgspec.Struct, frozen=True, array_like=True):
    """One sportsbook's head-to-head (moneyline) line for an event, as of ``updated_ms``."""

    book: str
    updated_ms: int
    prices: list[OddsPrice]


class Odds(_Header, frozen=True, tag="odds"):
    """Sportsbook odds of one event (The Odds API's event, h2h market only), published by
    anyone with odds to offer; the arb worker reads them (``[arb] odds_source = "bus"``).
    ``event_id`` is the source's own id; outcome names are team names (and "Draw")."""

    event_id: str
    sport_key: str
    commence_ms: int
    home_team: str
    away_team: str
    books: list[BookOdds]
    topic_field: ClassVar[str] = "sport_key"
    durable: ClassVar[bool] = False


class Heartbeat(_Header, frozen=True, tag="hb"):
    worker: str
    pid: int
    uptime_ms: int
    ready: bool
    counters: dict[str, int] = {}
    topic_field: ClassVar[str] = "worker"
    durable: ClassVar[bool] = False


class WorkerEvent(_Header, frozen=True, tag="wevent"):
    """Lifecycle of a worker process (started, ready, stopped, exited, restarted, ...)."""

    worker: str
    event: str
    pid: int = 0
    exit_code: int | None = None
    detail: str = ""
    topic_field: ClassVar[str] = "worker"


class Control(_Header, frozen=True, tag="ctl"):
    """A request to a worker over the bus, e.g. orderbook -> connector ``snapshot``."""

    target: str
    cmd: str
    tickers: list[str] = []
    reason: str = ""
    args: dict[str, Any] = {}
    topic_field: ClassVar[str] = "target"
    durable: ClassVar[bool] = False


Message = (
    BookSnapshot
    | BookDelta
    | BookState
    | Ticker
    | Trade
    | Fill
    | MarketPosition
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
