"""Book deltas packed in runs, markets named by integer ids (shared.store.deltapack).

``book_deltas`` held a row per delta (179 B each in PostgreSQL, 67 in SQLite: row header,
ticker text, the key's btree entry). It becomes a row per run of one subscription's deltas,
columnar and narrow; ``market_ids`` is the dictionary of the tickers runs refer to. Existing
deltas are moved: read in key order, packed by the writer's own codec, the old table dropped.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from shared.store.deltapack import DAY_US, rows_of, runs_of
from shared.store.deltastore import partition_ddl
from shared.store.types import UtcTimestamp, datetime_to_us

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = "book_deltas_0006"
#: Deltas read (and packed) per step of the move: bounds its memory.
CHUNK = 50_000


#: PostgreSQL: book_deltas one row per delta, for SQL users (psql, Grafana, ad hoc joins). It
#: decodes the runs' bodies in SQL (the layout of shared.store.deltapack: a 5-byte head, then
#: per column a width byte and an 8-byte base, then the columns), so it is slow next to the
#: readers in shared.store.deltaread; it is tested equal to them.
DECODE_FUNCTION = """
CREATE FUNCTION kx_delta_int(b bytea, off integer, w integer) RETURNS numeric
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT CASE WHEN v >= 2::numeric ^ (8 * w - 1) THEN v - 2::numeric ^ (8 * w) ELSE v END
  FROM (
    SELECT sum(get_byte(b, off + j)::numeric * 256::numeric ^ j) AS v FROM generate_series(0, w - 1) AS j
  ) AS s
$$
"""
_HEAD = ", ".join(
    f"get_byte(d.body, {5 + 9 * k}) AS w{k}, kx_delta_int(d.body, {6 + 9 * k}, 8) AS b{k}" for k in range(7)
)
_STARTS = ", ".join(
    f"68 + d.n * ({' + '.join(f'h.w{j}' for j in range(k)) or '0'}) AS o{k}" for k in range(7)
)


def _col(k: int) -> str:
    """Column k of delta i: its base plus its stored value."""
    return f"(h.b{k} + kx_delta_int(d.body, s.o{k} + i * h.w{k}, h.w{k}))"


VIEW = f"""
CREATE VIEW book_delta_rows AS
SELECT d.conn, d.sid, {_col(0)}::bigint AS xseq, m.ticker,
  CASE {_col(2)} WHEN 0 THEN 'yes' ELSE 'no' END AS side,
  {_col(3)}::bigint AS price, {_col(4)}::bigint AS delta,
  timestamptz 'epoch' + {_col(5)}::bigint * interval '1 microsecond' AS ts,
  timestamptz 'epoch' + {_col(6)}::bigint * interval '1 microsecond' AS recv
FROM book_deltas AS d
CROSS JOIN LATERAL (SELECT {_HEAD}) AS h
CROSS JOIN LATERAL (SELECT {_STARTS}) AS s
CROSS JOIN LATERAL generate_series(0, d.n - 1) AS i
JOIN market_ids AS m ON m.id = {_col(1)}
"""


def _ts(name: str) -> sa.Column[object]:
    return sa.Column(name, UtcTimestamp(), nullable=False)


def _int(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), nullable=False)


def _runs_table(name: str = "book_deltas") -> sa.Table:
    return sa.Table(
        name, sa.MetaData(),
        _int("conn"), _int("sid"), _int("first_xseq"), _int("last_xseq"),
        sa.Column("n", sa.Integer(), nullable=False), _ts("ts_lo"), _ts("ts_hi"), _ts("recv_lo"),
        sa.Column("body", sa.LargeBinary(), nullable=False),
    )  # fmt: skip


def _rows_table(name: str) -> sa.Table:
    return sa.Table(
        name, sa.MetaData(),
        _int("conn"), _int("sid"), _int("xseq"), sa.Column("ticker", sa.Text()), sa.Column("side", sa.Text()),
        _int("price"), _int("delta"), _ts("ts"), _ts("recv"),
    )  # fmt: skip


def _us(v: Any) -> Any:
    return datetime_to_us(v) if isinstance(v, datetime) else v


def _rename_old(pg: bool, old: str, new: str, pk_old: str, pk_new: str) -> None:
    if pg:  # a constraint keeps its name (and its index's) across a table rename
        op.execute(f'ALTER TABLE "{old}" RENAME CONSTRAINT "{pk_old}" TO "{pk_new}"')
    op.rename_table(old, new)


def upgrade() -> None:
    bind = op.get_bind()
    pg = bind.dialect.name == "postgresql"
    op.create_table(
        "market_ids",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("ticker", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_market_ids"),
        sa.UniqueConstraint("ticker", name="uq_market_ids_ticker"),
    )
    _rename_old(pg, "book_deltas", OLD, "pk_book_deltas", "pk_book_deltas_0006")
    op.create_table(
        "book_deltas",
        _int("conn"), _int("sid"), _int("first_xseq"), _int("last_xseq"),
        sa.Column("n", sa.Integer(), nullable=False), _ts("ts_lo"), _ts("ts_hi"), _ts("recv_lo"),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("conn", "sid", "first_xseq", "recv_lo", name="pk_book_deltas"),
        postgresql_partition_by="RANGE (recv_lo)",
    )  # fmt: skip
    op.create_index("ix_book_deltas_ts_lo", "book_deltas", ["ts_lo"], postgresql_using="brin")
    op.execute(f'INSERT INTO market_ids (ticker) SELECT DISTINCT ticker FROM "{OLD}" ORDER BY ticker')
    ids = {t: i for i, t in bind.execute(sa.text("SELECT id, ticker FROM market_ids"))}
    old, runs = _rows_table(OLD), _runs_table()
    c = old.c
    after: tuple[int, int, int] | None = None
    days: set[int] = set()
    while True:
        stmt = sa.select(old).order_by(c.conn, c.sid, c.xseq).limit(CHUNK)
        if after is not None:
            stmt = stmt.where(sa.tuple_(c.conn, c.sid, c.xseq) > sa.tuple_(*after))
        rows = [tuple(_us(v) for v in r) for r in bind.execute(stmt)]
        if not rows:
            break
        packed = runs_of(rows, ids.__getitem__)
        if pg:
            for day in sorted({r.recv_lo // DAY_US for r in packed} - days):
                for sql in partition_ddl(day):
                    bind.execute(sa.text(sql))
                days.add(day)
        bind.execute(sa.insert(runs), [r._asdict() for r in packed])
        after = rows[-1][:3]
    op.drop_table(OLD)
    if pg:
        op.execute(DECODE_FUNCTION)
        op.execute(VIEW)


def downgrade() -> None:
    bind = op.get_bind()
    pg = bind.dialect.name == "postgresql"
    tickers = {i: t for i, t in bind.execute(sa.text("SELECT id, ticker FROM market_ids"))}
    if pg:
        op.execute("DROP VIEW IF EXISTS book_delta_rows")
        op.execute("DROP FUNCTION IF EXISTS kx_delta_int(bytea, integer, integer)")
    _rename_old(pg, "book_deltas", "book_deltas_0007", "pk_book_deltas", "pk_book_deltas_0007")
    op.drop_index("ix_book_deltas_ts_lo", "book_deltas_0007")
    op.create_table(
        "book_deltas",
        _int("conn"), _int("sid"), _int("xseq"), sa.Column("ticker", sa.Text(), nullable=False),
        sa.Column("side", sa.Text(), nullable=False), _int("price"), _int("delta"), _ts("ts"), _ts("recv"),
        sa.PrimaryKeyConstraint("conn", "sid", "xseq", name="pk_book_deltas"),
        sqlite_with_rowid=False,
    )  # fmt: skip
    packed = _runs_table("book_deltas_0007")
    rows_t = _rows_table("book_deltas")
    p = packed.c
    after: tuple[int, int, int] | None = None
    while True:
        stmt = sa.select(packed).order_by(p.conn, p.sid, p.first_xseq).limit(CHUNK // 100 + 1)
        if after is not None:
            stmt = stmt.where(sa.tuple_(p.conn, p.sid, p.first_xseq) > sa.tuple_(*after))
        got = list(bind.execute(stmt))
        if not got:
            break
        out = [r for run in got for r in rows_of(run, tickers.__getitem__)]
        names = [col.name for col in rows_t.columns]
        bind.execute(sa.insert(rows_t), [dict(zip(names, r, strict=True)) for r in out])
        after = (got[-1][0], got[-1][1], got[-1][2])
    op.drop_table("book_deltas_0007")
    op.drop_table("market_ids")
