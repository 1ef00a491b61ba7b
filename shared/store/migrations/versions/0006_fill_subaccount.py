"""Fills say which subaccount's order filled: ``subaccount`` (null: none named).

Kalshi's ``fill`` message carries an optional ``subaccount``; until now it was dropped.
Existing rows get null: the subaccount of those fills is not known.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # batch mode: SQLite cannot ALTER in place (recreate="auto" is a plain ADD COLUMN elsewhere).
    with op.batch_alter_table("fills", recreate="auto") as t:
        t.add_column(sa.Column("subaccount", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("fills", recreate="auto") as t:
        t.drop_column("subaccount")
