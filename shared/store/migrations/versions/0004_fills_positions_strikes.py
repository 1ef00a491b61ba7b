"""This account's fills and positions get tables; markets keep their strikes.

``fills`` and ``positions`` store the private channels' ``fill`` and ``position`` bus kinds
(journaled before this, not stored). ``markets`` gains ``strike_type``, ``floor_strike`` and
``cap_strike`` (``metadata_updated``; the exact decimal text Kalshi sent): null on rows
stored before, as nothing then knew them.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.store.types import UtcTimestamp

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STRIKES = ("strike_type", "floor_strike", "cap_strike")


def _ts(name: str) -> sa.Column[object]:
    return sa.Column(name, UtcTimestamp(), nullable=False)


def _int(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), nullable=False)


def _text(name: str, nullable: bool = False) -> sa.Column[str]:
    return sa.Column(name, sa.Text(), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "fills",
        _text("trade_id"),
        _text("order_id"),
        _text("ticker"),
        sa.Column("is_taker", sa.Boolean(), nullable=False),
        _text("side"),
        _int("yes_price"),
        _int("count"),
        _int("fee"),
        _text("action"),
        _int("post_position"),
        _text("client_order_id", True),
        _ts("ts"),
        _ts("recv"),
        sa.PrimaryKeyConstraint("trade_id", "order_id", name="pk_fills"),
    )
    op.create_index("ix_fills_ticker_ts", "fills", ["ticker", "ts"])
    op.create_table(
        "positions",
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
        sa.PrimaryKeyConstraint("ticker", "ts", "pub", "epoch", "seq", name="pk_positions"),
    )
    with op.batch_alter_table("markets", recreate="auto") as m:
        for name in STRIKES:
            m.add_column(sa.Column(name, sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("markets", recreate="auto") as m:
        for name in reversed(STRIKES):
            m.drop_column(name)
    op.drop_table("positions")
    op.drop_index("ix_fills_ticker_ts", table_name="fills")
    op.drop_table("fills")
