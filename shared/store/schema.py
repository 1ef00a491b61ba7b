"""The database schema (SQLAlchemy Core). Changes go through a migration in ``migrations/``.

Conventions:
- prices, sizes, counts, money: exact BIGINT (prices in $0.0001, counts in hundredths
  of a contract, money in micro-dollars, fee multipliers in parts per million);
- ``ts``: exchange time when the exchange gave one, else receive time; ``recv``: when
  kxfeed received the data (both timezone-aware, microseconds);
- append tables (history) carry a natural primary key, so re-delivered messages are
  ignored by the insert; state tables (markets, events, series) are upserted;
- level lists, tickers lists, price ranges: JSON text of integers (exact).
"""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from shared.store.types import UtcTimestamp

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)


def _ts(name: str, nullable: bool = False) -> Column[object]:
    return Column(name, UtcTimestamp(), nullable=nullable)


def _int(name: str, nullable: bool = False) -> Column[int]:
    return Column(name, BigInteger(), nullable=nullable)


def _text(name: str, nullable: bool = False) -> Column[str]:
    return Column(name, Text(), nullable=nullable)


def _bool(name: str, nullable: bool = False) -> Column[bool]:
    return Column(name, Boolean(), nullable=nullable)


# ---- append (history) tables -----------------------------------------------------------------

book_deltas = Table(
    "book_deltas",
    metadata,
    # One row per *run* of deltas of one subscription (shared.store.deltapack: the codec, and
    # why). A delta's identity is still Kalshi's (conn, sid, xseq): the writer stores a delta
    # only when no stored run holds its xseq (services/writer/batches.py).
    _int("conn"),
    _int("sid"),
    _int("first_xseq"),
    _int("last_xseq"),
    Column("n", Integer(), nullable=False),
    # Bounds of the run's ts (range queries skip runs outside a window) and its first receive
    # time (the UTC day a run belongs to: runs never straddle one).
    _ts("ts_lo"),
    _ts("ts_hi"),
    _ts("recv_lo"),
    Column("body", LargeBinary(), nullable=False),
    # recv_lo is in the key because PostgreSQL partitions by it (a unique index must hold the
    # partition key); a run written twice has the same recv_lo, so the key still refuses it.
    PrimaryKeyConstraint("conn", "sid", "first_xseq", "recv_lo"),
    # Time order is insertion order: BRIN on PostgreSQL (a few pages per partition).
    Index("ix_book_deltas_ts_lo", "ts_lo", postgresql_using="brin"),
    # PostgreSQL: one partition per UTC day of recv_lo (book_deltas_pYYYYMMDD, created by the
    # writer as days come: shared.store.deltastore), so retention drops whole days.
    postgresql_partition_by="RANGE (recv_lo)",
)

#: The market dictionary: a run names its markets by these ids, not by ticker text per delta.
market_ids = Table(
    "market_ids",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=True),
    _text("ticker"),
    UniqueConstraint("ticker"),
)

#: book_deltas as the writer's rows and the readers see it: one delta, DeltaRow's fields.
DELTA_COLUMNS = ("conn", "sid", "xseq", "ticker", "side", "price", "delta", "ts", "recv")

book_snapshots = Table(
    "book_snapshots",
    metadata,
    _text("ticker"),
    _ts("recv"),
    _int("conn"),
    _int("sid"),
    _int("xseq"),
    _text("market_id"),
    _text("source"),
    _text("yes"),
    _text("no"),
    _ts("ts"),
    # REST snapshots carry no sequence (xseq = 0): one fetch = one ticker at one receive time.
    # The WS identity is in the key too: a connector receives several snapshots of one market
    # in one read (same recv) when a restart and a gap repair both ask for it.
    PrimaryKeyConstraint("ticker", "recv", "conn", "sid", "xseq"),
    # WS snapshots are identified by Kalshi's (connection, sid, seq) like deltas.
    Index(
        "uq_book_snapshots_conn_sid_xseq",
        "conn",
        "sid",
        "xseq",
        unique=True,
        postgresql_where=text("xseq > 0"),
        sqlite_where=text("xseq > 0"),
    ),
)

ticks = Table(
    "ticks",
    metadata,
    _text("ticker"),
    _ts("ts"),
    _text("source"),  # ws (ticker channel) | poll (REST polling)
    _ts("recv"),
    _text("market_id", True),
    _text("status", True),
    _int("last_price", True),
    _int("yes_bid", True),
    _int("yes_ask", True),
    _int("yes_bid_size"),
    _int("yes_ask_size"),
    _int("last_trade_size", True),
    _int("volume"),
    _int("open_interest"),
    _int("dollar_volume", True),
    _int("dollar_open_interest", True),
    _bool("fallback"),
    # The bus identity of the message (publisher, its epoch, its seq): Kalshi sends several
    # ticker updates of one market within one millisecond, and each is a row.
    Column("pub", Text(), nullable=False, server_default=""),
    Column("epoch", BigInteger(), nullable=False, server_default="0"),
    Column("seq", BigInteger(), nullable=False, server_default="0"),
    PrimaryKeyConstraint("ticker", "ts", "source", "pub", "epoch", "seq"),
)

trades = Table(
    "trades",
    metadata,
    _text("trade_id"),
    _text("ticker"),
    _int("yes_price"),
    _int("no_price"),
    _int("count"),
    _text("taker_side"),
    _bool("is_block_trade"),
    _ts("ts"),
    _ts("recv"),
    # ws (live channel) or rest (backfilled after a gap, disconnect or connector restart).
    Column("source", Text(), nullable=False, server_default="ws"),
    PrimaryKeyConstraint("trade_id"),
    Index("ix_trades_ticker_ts", "ticker", "ts"),
)

lifecycle = Table(
    "lifecycle",
    metadata,
    # Market lifecycle events (ticker = market) and event-level ones (ticker = event
    # ticker, event_type event_lifecycle | event_fee_update, specifics in ``detail``).
    _text("ticker"),
    _text("event_type"),
    _ts("ts"),
    _ts("recv"),
    _text("event_ticker", True),
    _ts("open_ts", True),
    _ts("close_ts", True),
    _text("result", True),
    _ts("determination_ts", True),
    _int("settlement_value", True),
    _ts("settled_ts", True),
    _bool("is_deactivated", True),
    _text("price_ranges", True),
    _text("title", True),
    _text("yes_sub_title", True),
    _text("no_sub_title", True),
    _text("detail", True),
    PrimaryKeyConstraint("ticker", "event_type", "ts"),
)

gaps = Table(
    "gaps",
    metadata,
    # Two rows per gap: status "open" when detected, "recovered" when closed.
    _int("conn"),
    _int("sid"),
    _int("expected"),
    _text("status"),
    _int("received"),
    _text("tickers"),
    _text("reason"),
    _text("method"),
    _ts("detected", True),
    _ts("recovered", True),
    _ts("ts"),
    _ts("recv"),
    PrimaryKeyConstraint("conn", "sid", "expected", "status"),
)

signals = Table(
    "signals",
    metadata,
    _text("strategy"),
    _text("ticker"),
    _text("side"),
    _ts("ts"),
    _ts("recv"),
    _int("price"),
    _int("size"),
    _int("fair_ppm"),
    _int("edge"),
    _int("fees"),
    _text("legs"),
    _text("detail"),
    PrimaryKeyConstraint("strategy", "ticker", "side", "ts"),
)

fills = Table(
    "fills",
    metadata,
    # This account's fills (private ``fill`` channel). Kalshi names a fill by the trade and the
    # order: both sides of one trade can be this account's (two orders), each its own fill.
    _text("trade_id"),
    _text("order_id"),
    _text("ticker"),
    _bool("is_taker"),
    _text("side"),
    _int("yes_price"),
    _int("count"),
    _int("fee"),
    _text("action"),
    _int("post_position"),
    _text("client_order_id", True),
    _ts("ts"),
    _ts("recv"),
    _int("subaccount", True),  # 0006: the subaccount whose order filled
    PrimaryKeyConstraint("trade_id", "order_id"),
    Index("ix_fills_ticker_ts", "ticker", "ts"),
)

positions = Table(
    "positions",
    metadata,
    # Snapshots of this account's position in one market (private ``market_positions``
    # channel). Kalshi's frame carries no time of its own, so ts is usually the receive time,
    # shared by every frame of one read: the bus identity (as in ticks) keeps two updates of
    # one market in one read apart, and a journal replay (same identity) stores them once.
    _text("ticker"),
    _ts("ts"),
    _ts("recv"),
    _int("position"),
    _int("position_cost"),
    _int("realized_pnl"),
    _int("fees_paid"),
    _int("volume"),
    _text("pub"),
    _int("epoch"),
    _int("seq"),
    PrimaryKeyConstraint("ticker", "ts", "pub", "epoch", "seq"),
)

orders = Table(
    "orders",
    metadata,
    # This account's orders, one row per state an order was in (private ``user_orders``). Two
    # updates are the same row when they say the same at the same time: a replay, or a
    # reconnecting connector publishing it again, stores it once.
    _text("order_id"),
    _ts("ts"),
    _text("status"),
    _int("yes_price"),
    _int("fill_count"),
    _int("remaining_count"),
    _ts("recv"),
    _text("ticker"),
    _text("side"),
    _int("initial_count"),
    _int("taker_fill_cost"),
    _int("maker_fill_cost"),
    _int("taker_fees", True),
    _int("maker_fees", True),
    _text("client_order_id", True),
    _text("order_group_id", True),
    _text("self_trade_prevention_type", True),
    _ts("created_ts", True),
    _ts("expiration_ts", True),
    _text("last_update_reason", True),
    _int("subaccount", True),
    PrimaryKeyConstraint("order_id", "ts", "status", "yes_price", "fill_count", "remaining_count"),
    Index("ix_orders_ticker_ts", "ticker", "ts"),
)

order_groups = Table(
    "order_groups",
    metadata,
    # Events of this account's order groups (private ``order_group_updates``); ts is the
    # matching engine's (required by the spec).
    _text("order_group_id"),
    _text("event_type"),
    _ts("ts"),
    _ts("recv"),
    _int("contracts_limit", True),
    PrimaryKeyConstraint("order_group_id", "event_type", "ts"),
)

worker_events = Table(
    "worker_events",
    metadata,
    _text("worker"),
    _ts("ts"),
    _text("event"),
    _ts("recv"),
    _int("pid"),
    _int("exit_code", True),
    _text("detail"),
    PrimaryKeyConstraint("worker", "ts", "event"),
)

# ---- state tables (upserted: the latest known values) --------------------------------------

markets = Table(
    "markets",
    metadata,
    _text("ticker"),
    _text("event_ticker", True),
    _text("series_ticker", True),
    _text("title", True),
    _text("yes_sub_title", True),
    _text("no_sub_title", True),
    _text("status", True),
    _text("market_type", True),
    _text("category", True),
    _ts("open_ts", True),
    _ts("close_ts", True),
    _ts("expiration_ts", True),
    _text("price_ranges", True),
    _text("fee_type", True),
    _int("fee_multiplier_ppm", True),
    _text("result", True),
    _ts("updated"),
    # From ``metadata_updated`` (and REST): the strike as the exact decimal text Kalshi sent.
    _text("strike_type", True),
    _text("floor_strike", True),
    _text("cap_strike", True),
    PrimaryKeyConstraint("ticker"),
)

events = Table(
    "events",
    metadata,
    _text("event_ticker"),
    _text("series_ticker", True),
    _text("title", True),
    _text("subtitle", True),
    _text("collateral_return_type", True),
    _ts("strike_ts", True),
    _text("strike_period", True),
    _text("fee_type_override", True),
    _int("fee_multiplier_ppm_override", True),
    _ts("updated"),
    PrimaryKeyConstraint("event_ticker"),
)

series = Table(
    "series",
    metadata,
    _text("series_ticker"),
    _text("category", True),
    _ts("updated"),
    PrimaryKeyConstraint("series_ticker"),
)

# ---- bookkeeping -----------------------------------------------------------------------------

stream_offsets = Table(
    "stream_offsets",
    metadata,
    # The last seq stored of each publisher stream, written with the rows it covers.
    _text("publisher"),
    _int("epoch"),
    _text("kind"),
    _int("seq"),
    _ts("recv"),
    _ts("updated"),
    PrimaryKeyConstraint("publisher", "epoch", "kind"),
)

table_hours = Table(
    "table_hours",
    metadata,
    # Rows stored per append table per hour of receive time, kept in the same transaction
    # as the rows: ``kxfeed db stats`` reads this instead of scanning big tables.
    _text("table_name"),
    _ts("hour"),
    _int("rows"),
    PrimaryKeyConstraint("table_name", "hour"),
)


class AppendSpec(NamedTuple):
    name: str
    columns: tuple[str, ...]
    ts_columns: frozenset[str]
    recv_index: int
    #: The primary key's columns (what makes two rows "the same row").
    key: tuple[str, ...]


class StateSpec(NamedTuple):
    name: str
    key: str
    columns: tuple[str, ...]


APPEND_TABLES: tuple[Table, ...] = (
    book_deltas,
    book_snapshots,
    ticks,
    trades,
    lifecycle,
    gaps,
    signals,
    worker_events,
    fills,
    positions,
    orders,
    order_groups,
)
STATE_TABLES: tuple[Table, ...] = (markets, events, series)
#: Append tables stored packed (a row is not one message): no generic INSERT/COPY of rows.
PACKED: frozenset[str] = frozenset({"book_deltas"})
#: This account's own activity (private channels, with credentials): empty on a public feed.
ACCOUNT_TABLES: tuple[Table, ...] = (fills, positions, orders, order_groups)


def _append_spec(t: Table) -> AppendSpec:
    if t is book_deltas:  # packed: its spec is the logical delta row
        return AppendSpec(t.name, DELTA_COLUMNS, frozenset({"ts", "recv"}), 8, ("conn", "sid", "xseq"))
    cols = tuple(c.name for c in t.columns)
    ts_cols = frozenset(c.name for c in t.columns if isinstance(c.type, UtcTimestamp))
    key = tuple(c.name for c in t.primary_key.columns)
    return AppendSpec(t.name, cols, ts_cols, cols.index("recv"), key)


def _state_spec(t: Table) -> StateSpec:
    (key,) = (c.name for c in t.primary_key.columns)
    return StateSpec(t.name, key, tuple(c.name for c in t.columns))


APPEND: dict[str, AppendSpec] = {t.name: _append_spec(t) for t in APPEND_TABLES}
STATE: dict[str, StateSpec] = {t.name: _state_spec(t) for t in STATE_TABLES}
