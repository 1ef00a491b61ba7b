"""This account's orders and order-group events get tables.

``orders`` stores the ``order`` bus kind (``user_order``: one row per state an order was in),
``order_groups`` the ``ordergroup`` kind (``order_group_updates``). Both were journaled and
not stored before this.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.store.types import UtcTimestamp

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, UtcTimestamp(), nullable=nullable)


def _int(name: str, nullable: bool = False) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), nullable=nullable)


def _text(name: str, nullable: bool = False) -> sa.Column[str]:
    return sa.Column(name, sa.Text(), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "orders",
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
        sa.PrimaryKeyConstraint(
            "order_id", "ts", "status", "yes_price", "fill_count", "remaining_count", name="pk_orders"
        ),
    )
    op.create_index("ix_orders_ticker_ts", "orders", ["ticker", "ts"])
    op.create_table(
        "order_groups",
        _text("order_group_id"),
        _text("event_type"),
        _ts("ts"),
        _ts("recv"),
        _int("contracts_limit", True),
        sa.PrimaryKeyConstraint("order_group_id", "event_type", "ts", name="pk_order_groups"),
    )


def downgrade() -> None:
    op.drop_table("order_groups")
    op.drop_index("ix_orders_ticker_ts", table_name="orders")
    op.drop_table("orders")
