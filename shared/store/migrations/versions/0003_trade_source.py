"""Trades say where they came from: ``source`` ws (live channel) or rest (backfilled).

The gap filler backfills trades missed during a gap, a disconnect or a connector restart
from ``/markets/trades``; those rows are stored with source "rest". Every row stored before
this came from the live channel, so existing rows get "ws" (the server default).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # batch mode: SQLite cannot ALTER in place (recreate="auto" is a plain ADD COLUMN elsewhere).
    with op.batch_alter_table("trades", recreate="auto") as t:
        t.add_column(sa.Column("source", sa.Text(), nullable=False, server_default="ws"))


def downgrade() -> None:
    with op.batch_alter_table("trades", recreate="auto") as t:
        t.drop_column("source")
