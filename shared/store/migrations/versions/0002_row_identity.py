"""Keys that cannot merge two messages: ticks carry their bus identity, WS snapshots their seq.

``ticks`` was keyed (ticker, ts, source): two ticker updates of one market in one millisecond
collapsed into one row. ``book_snapshots`` was keyed (ticker, recv): two WS snapshots of one
market received in one read collapsed. Existing rows keep their (unique) old keys; the new
columns default to the values such rows would have had no way to know.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ticks", recreate="auto") as t:
        t.add_column(sa.Column("pub", sa.Text(), nullable=False, server_default=""))
        t.add_column(sa.Column("epoch", sa.BigInteger(), nullable=False, server_default="0"))
        t.add_column(sa.Column("seq", sa.BigInteger(), nullable=False, server_default="0"))
        t.drop_constraint("pk_ticks", type_="primary")
        t.create_primary_key("pk_ticks", ["ticker", "ts", "source", "pub", "epoch", "seq"])
    with op.batch_alter_table("book_snapshots", recreate="auto") as b:
        b.drop_constraint("pk_book_snapshots", type_="primary")
        b.create_primary_key("pk_book_snapshots", ["ticker", "recv", "conn", "sid", "xseq"])


def downgrade() -> None:
    with op.batch_alter_table("book_snapshots", recreate="auto") as b:
        b.drop_constraint("pk_book_snapshots", type_="primary")
        b.create_primary_key("pk_book_snapshots", ["ticker", "recv"])
    with op.batch_alter_table("ticks", recreate="auto") as t:
        t.drop_constraint("pk_ticks", type_="primary")
        t.create_primary_key("pk_ticks", ["ticker", "ts", "source"])
        t.drop_column("seq")
        t.drop_column("epoch")
        t.drop_column("pub")
