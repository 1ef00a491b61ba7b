"""Initial schema: market data history, state tables, stream offsets.

Revision ID: 0001
Revises:
Create Date: 2026-11-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.store.types import UtcTimestamp

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, UtcTimestamp(), nullable=nullable)


def _int(name: str, nullable: bool = False) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), nullable=nullable)


def _text(name: str, nullable: bool = False) -> sa.Column[str]:
    return sa.Column(name, sa.Text(), nullable=nullable)


def _bool(name: str, nullable: bool = False) -> sa.Column[bool]:
    return sa.Column(name, sa.Boolean(), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "book_deltas",
        _int("conn"), _int("sid"), _int("xseq"), _text("ticker"), _text("side"), _int("price"),
        _int("delta"), _ts("ts"), _ts("recv"),
        sa.PrimaryKeyConstraint("conn", "sid", "xseq", name="pk_book_deltas"),
        sqlite_with_rowid=False,
    )  # fmt: skip
    op.create_table(
        "book_snapshots",
        _text("ticker"), _ts("recv"), _int("conn"), _int("sid"), _int("xseq"), _text("market_id"),
        _text("source"), _text("yes"), _text("no"), _ts("ts"),
        sa.PrimaryKeyConstraint("ticker", "recv", name="pk_book_snapshots"),
    )  # fmt: skip
    op.create_index(
        "uq_book_snapshots_conn_sid_xseq",
        "book_snapshots",
        ["conn", "sid", "xseq"],
        unique=True,
        postgresql_where=sa.text("xseq > 0"),
        sqlite_where=sa.text("xseq > 0"),
    )
    op.create_table(
        "ticks",
        _text("ticker"), _ts("ts"), _text("source"), _ts("recv"), _text("market_id", True),
        _text("status", True), _int("last_price", True), _int("yes_bid", True), _int("yes_ask", True),
        _int("yes_bid_size"), _int("yes_ask_size"), _int("last_trade_size", True), _int("volume"),
        _int("open_interest"), _int("dollar_volume", True), _int("dollar_open_interest", True),
        _bool("fallback"),
        sa.PrimaryKeyConstraint("ticker", "ts", "source", name="pk_ticks"),
    )  # fmt: skip
    op.create_table(
        "trades",
        _text("trade_id"), _text("ticker"), _int("yes_price"), _int("no_price"), _int("count"),
        _text("taker_side"), _bool("is_block_trade"), _ts("ts"), _ts("recv"),
        sa.PrimaryKeyConstraint("trade_id", name="pk_trades"),
    )  # fmt: skip
    op.create_index("ix_trades_ticker_ts", "trades", ["ticker", "ts"])
    op.create_table(
        "lifecycle",
        _text("ticker"), _text("event_type"), _ts("ts"), _ts("recv"), _text("event_ticker", True),
        _ts("open_ts", True), _ts("close_ts", True), _text("result", True), _ts("determination_ts", True),
        _int("settlement_value", True), _ts("settled_ts", True), _bool("is_deactivated", True),
        _text("price_ranges", True), _text("title", True), _text("yes_sub_title", True),
        _text("no_sub_title", True), _text("detail", True),
        sa.PrimaryKeyConstraint("ticker", "event_type", "ts", name="pk_lifecycle"),
    )  # fmt: skip
    op.create_table(
        "gaps",
        _int("conn"), _int("sid"), _int("expected"), _text("status"), _int("received"), _text("tickers"),
        _text("reason"), _text("method"), _ts("detected", True), _ts("recovered", True), _ts("ts"),
        _ts("recv"),
        sa.PrimaryKeyConstraint("conn", "sid", "expected", "status", name="pk_gaps"),
    )  # fmt: skip
    op.create_table(
        "signals",
        _text("strategy"), _text("ticker"), _text("side"), _ts("ts"), _ts("recv"), _int("price"),
        _int("size"), _int("fair_ppm"), _int("edge"), _int("fees"), _text("legs"), _text("detail"),
        sa.PrimaryKeyConstraint("strategy", "ticker", "side", "ts", name="pk_signals"),
    )  # fmt: skip
    op.create_table(
        "worker_events",
        _text("worker"), _ts("ts"), _text("event"), _ts("recv"), _int("pid"), _int("exit_code", True),
        _text("detail"),
        sa.PrimaryKeyConstraint("worker", "ts", "event", name="pk_worker_events"),
    )  # fmt: skip
    op.create_table(
        "markets",
        _text("ticker"), _text("event_ticker", True), _text("series_ticker", True), _text("title", True),
        _text("yes_sub_title", True), _text("no_sub_title", True), _text("status", True),
        _text("market_type", True), _text("category", True), _ts("open_ts", True), _ts("close_ts", True),
        _ts("expiration_ts", True), _text("price_ranges", True), _text("fee_type", True),
        _int("fee_multiplier_ppm", True), _text("result", True), _ts("updated"),
        sa.PrimaryKeyConstraint("ticker", name="pk_markets"),
    )  # fmt: skip
    op.create_table(
        "events",
        _text("event_ticker"), _text("series_ticker", True), _text("title", True), _text("subtitle", True),
        _text("collateral_return_type", True), _ts("strike_ts", True), _text("strike_period", True),
        _text("fee_type_override", True), _int("fee_multiplier_ppm_override", True), _ts("updated"),
        sa.PrimaryKeyConstraint("event_ticker", name="pk_events"),
    )  # fmt: skip
    op.create_table(
        "series",
        _text("series_ticker"), _text("category", True), _ts("updated"),
        sa.PrimaryKeyConstraint("series_ticker", name="pk_series"),
    )  # fmt: skip
    op.create_table(
        "stream_offsets",
        _text("publisher"), _int("epoch"), _text("kind"), _int("seq"), _ts("recv"), _ts("updated"),
        sa.PrimaryKeyConstraint("publisher", "epoch", "kind", name="pk_stream_offsets"),
    )  # fmt: skip
    op.create_table(
        "table_hours",
        _text("table_name"), _ts("hour"), _int("rows"),
        sa.PrimaryKeyConstraint("table_name", "hour", name="pk_table_hours"),
    )  # fmt: skip


def downgrade() -> None:
    for table in (
        "table_hours", "stream_offsets", "series", "events", "markets", "worker_events", "signals",
        "gaps", "lifecycle", "trades", "ticks", "book_snapshots", "book_deltas",
    ):  # fmt: skip
        op.drop_table(table)
