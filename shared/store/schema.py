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
    Column,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from shared.store.columns import bool_col, int_col, metadata, text_col, ts_col
from shared.store.schema_account import fills, order_groups, orders, positions
from shared.store.types import UtcTimestamp

# ---- append (history) tables -----------------------------------------------------------------

book_deltas = Table(
    "book_deltas",
    metadata,
    # One row per *run* of deltas of one subscription (shared.store.deltapack: the codec, and
    # why). A delta's identity is still Kalshi's (conn, sid, xseq): the writer stores a delta
    # only when no stored run holds its xseq (services/writer/batches.py).
    int_col("conn"),
    int_col("sid"),
    int_col("first_xseq"),
    int_col("last_xseq"),
    Column("n", Integer(), nullable=False),
    # Bounds of the run's ts (range queries skip runs outside a window) and its first receive
    # time (the UTC day a run belongs to: runs never straddle one).
    ts_col("ts_lo"),
    ts_col("ts_hi"),
    ts_col("recv_lo"),
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
    text_col("ticker"),
    UniqueConstraint("ticker"),
)

#: book_deltas as the writer's rows and the readers see it: one delta, DeltaRow's fields.
DELTA_COLUMNS = ("conn", "sid", "xseq", "ticker", "side", "price", "delta", "ts", "recv")

book_snapshots = Table(
    "book_snapshots",
    metadata,
    text_col("ticker"),
    ts_col("recv"),
    int_col("conn"),
    int_col("sid"),
    int_col("xseq"),
    text_col("market_id"),
    text_col("source"),
    text_col("yes"),
    text_col("no"),
    ts_col("ts"),
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
    text_col("ticker"),
    ts_col("ts"),
    text_col("source"),  # ws (ticker channel) | poll (REST polling)
    ts_col("recv"),
    text_col("market_id", True),
    text_col("status", True),
    int_col("last_price", True),
    int_col("yes_bid", True),
    int_col("yes_ask", True),
    int_col("yes_bid_size"),
    int_col("yes_ask_size"),
    int_col("last_trade_size", True),
    int_col("volume"),
    int_col("open_interest"),
    int_col("dollar_volume", True),
    int_col("dollar_open_interest", True),
    bool_col("fallback"),
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
    text_col("trade_id"),
    text_col("ticker"),
    int_col("yes_price"),
    int_col("no_price"),
    int_col("count"),
    text_col("taker_side"),
    bool_col("is_block_trade"),
    ts_col("ts"),
    ts_col("recv"),
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
    text_col("ticker"),
    text_col("event_type"),
    ts_col("ts"),
    ts_col("recv"),
    text_col("event_ticker", True),
    ts_col("open_ts", True),
    ts_col("close_ts", True),
    text_col("result", True),
    ts_col("determination_ts", True),
    int_col("settlement_value", True),
    ts_col("settled_ts", True),
    bool_col("is_deactivated", True),
    text_col("price_ranges", True),
    text_col("title", True),
    text_col("yes_sub_title", True),
    text_col("no_sub_title", True),
    text_col("detail", True),
    PrimaryKeyConstraint("ticker", "event_type", "ts"),
)

gaps = Table(
    "gaps",
    metadata,
    # Two rows per gap: status "open" when detected, "recovered" when closed.
    int_col("conn"),
    int_col("sid"),
    int_col("expected"),
    text_col("status"),
    int_col("received"),
    text_col("tickers"),
    text_col("reason"),
    text_col("method"),
    ts_col("detected", True),
    ts_col("recovered", True),
    ts_col("ts"),
    ts_col("recv"),
    PrimaryKeyConstraint("conn", "sid", "expected", "status"),
)

signals = Table(
    "signals",
    metadata,
    text_col("strategy"),
    text_col("ticker"),
    text_col("side"),
    ts_col("ts"),
    ts_col("recv"),
    int_col("price"),
    int_col("size"),
    int_col("fair_ppm"),
    int_col("edge"),
    int_col("fees"),
    text_col("legs"),
    text_col("detail"),
    PrimaryKeyConstraint("strategy", "ticker", "side", "ts"),
)

worker_events = Table(
    "worker_events",
    metadata,
    text_col("worker"),
    ts_col("ts"),
    text_col("event"),
    ts_col("recv"),
    int_col("pid"),
    int_col("exit_code", True),
    text_col("detail"),
    PrimaryKeyConstraint("worker", "ts", "event"),
)

# ---- state tables (upserted: the latest known values) --------------------------------------

markets = Table(
    "markets",
    metadata,
    text_col("ticker"),
    text_col("event_ticker", True),
    text_col("series_ticker", True),
    text_col("title", True),
    text_col("yes_sub_title", True),
    text_col("no_sub_title", True),
    text_col("status", True),
    text_col("market_type", True),
    text_col("category", True),
    ts_col("open_ts", True),
    ts_col("close_ts", True),
    ts_col("expiration_ts", True),
    text_col("price_ranges", True),
    text_col("fee_type", True),
    int_col("fee_multiplier_ppm", True),
    text_col("result", True),
    ts_col("updated"),
    # From ``metadata_updated`` (and REST): the strike as the exact decimal text Kalshi sent.
    text_col("strike_type", True),
    text_col("floor_strike", True),
    text_col("cap_strike", True),
    PrimaryKeyConstraint("ticker"),
)

events = Table(
    "events",
    metadata,
    text_col("event_ticker"),
    text_col("series_ticker", True),
    text_col("title", True),
    text_col("subtitle", True),
    text_col("collateral_return_type", True),
    ts_col("strike_ts", True),
    text_col("strike_period", True),
    text_col("fee_type_override", True),
    int_col("fee_multiplier_ppm_override", True),
    ts_col("updated"),
    PrimaryKeyConstraint("event_ticker"),
)

series = Table(
    "series",
    metadata,
    text_col("series_ticker"),
    text_col("category", True),
    ts_col("updated"),
    PrimaryKeyConstraint("series_ticker"),
)

# ---- bookkeeping -----------------------------------------------------------------------------

stream_offsets = Table(
    "stream_offsets",
    metadata,
    # The last seq stored of each publisher stream, written with the rows it covers.
    text_col("publisher"),
    int_col("epoch"),
    text_col("kind"),
    int_col("seq"),
    ts_col("recv"),
    ts_col("updated"),
    PrimaryKeyConstraint("publisher", "epoch", "kind"),
)

table_hours = Table(
    "table_hours",
    metadata,
    # Rows stored per append table per hour of receive time, kept in the same transaction
    # as the rows: ``kxfeed db stats`` reads this instead of scanning big tables.
    text_col("table_name"),
    ts_col("hour"),
    int_col("rows"),
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
