"""The text of the writer's statements: portable SQL with each dialect's placeholders, and
the PostgreSQL specifics (staging tables, unnest inserts, one-statement bookkeeping)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, Boolean, Column

from shared.store.schema import APPEND, PACKED, STATE, metadata
from shared.store.types import UtcTimestamp

if TYPE_CHECKING:
    import asyncpg


def q(name: str) -> str:
    return f'"{name}"'


def cols_sql(cols: tuple[str, ...]) -> str:
    return ", ".join(q(c) for c in cols)


class Sql:
    """The statements of one dialect (placeholders differ, the rest is portable)."""

    def __init__(self, pg: bool) -> None:
        self.pg = pg

    def marks(self, n: int) -> str:
        return ", ".join(f"${i}" for i in range(1, n + 1)) if self.pg else ", ".join("?" * n)

    def insert_ignore(self, table: str) -> str:
        cols = APPEND[table].columns
        values = f"({cols_sql(cols)}) VALUES ({self.marks(len(cols))})"
        if self.pg:
            return f"INSERT INTO {q(table)} {values} ON CONFLICT DO NOTHING"
        return f"INSERT OR IGNORE INTO {q(table)} {values}"

    def upsert(self, table: str, cols: tuple[str, ...]) -> str:
        key = STATE[table].key
        all_cols = (key, *cols)
        values = f"({cols_sql(all_cols)}) VALUES ({self.marks(len(all_cols))})"
        head = f"INSERT INTO {q(table)} {values} ON CONFLICT ({q(key)})"
        if cols == ("updated",):
            return head + " DO NOTHING"
        return head + " DO UPDATE SET " + ", ".join(f"{q(c)} = excluded.{q(c)}" for c in cols)

    def offsets(self, source: str = "") -> str:
        """Upsert stream positions (never backwards); ``source`` replaces the VALUES row."""
        newer = 'excluded."seq" > "stream_offsets"."seq"'
        source = source or f"VALUES ({self.marks(6)})"
        return (
            'INSERT INTO "stream_offsets" ("publisher", "epoch", "kind", "seq", "recv", "updated") '
            f"{source} "
            'ON CONFLICT ("publisher", "epoch", "kind") DO UPDATE SET '
            f'"seq" = CASE WHEN {newer} THEN excluded."seq" ELSE "stream_offsets"."seq" END, '
            f'"recv" = CASE WHEN {newer} THEN excluded."recv" ELSE "stream_offsets"."recv" END, '
            '"updated" = excluded."updated"'
        )

    def hours(self, source: str = "") -> str:
        """Add to the rows stored per table and hour; ``source`` replaces the VALUES row."""
        source = source or f"VALUES ({self.marks(3)})"
        return (
            f'INSERT INTO "table_hours" ("table_name", "hour", "rows") {source} '
            'ON CONFLICT ("table_name", "hour") DO UPDATE SET "rows" = "table_hours"."rows" + excluded."rows"'
        )


#: 2000-01-01 (PostgreSQL's epoch) in microseconds since 1970-01-01.
PG_EPOCH_US = 946_684_800_000_000


async def integer_timestamps(conn: asyncpg.Connection) -> None:
    """Have an asyncpg connection send and read timestamptz as integer microseconds since 1970
    (the rows' form), as timestamptz's own integer (us since 2000): no datetime per value."""
    await conn.set_type_codec(
        "timestamptz",
        schema="pg_catalog",
        encoder=lambda us: (us - PG_EPOCH_US,),
        decoder=lambda t: t[0] + PG_EPOCH_US,
        format="tuple",
    )


#: Below this many rows, a table's share of a batch goes in one INSERT from unnest(arrays):
#: COPY's two extra round trips only pay off above it.
COPY_MIN_ROWS = 1000


def stage(table: str) -> str:
    return f"kx_stage_{table}"


def _pg_type(col: Column[Any]) -> str:
    if isinstance(col.type, UtcTimestamp):
        return "timestamptz"
    if isinstance(col.type, BigInteger):
        return "bigint"
    if isinstance(col.type, Boolean):
        return "boolean"
    return "text"


def _unnest_insert(table: str) -> str:
    cols = metadata.tables[table].columns
    names = cols_sql(tuple(c.name for c in cols))
    arrays = ", ".join(f"${i}::{_pg_type(c)}[]" for i, c in enumerate(cols, start=1))
    return f"INSERT INTO {q(table)} ({names}) SELECT * FROM unnest({arrays}) AS u({names})"


UNNEST = {table: _unnest_insert(table) for table in APPEND if table not in PACKED}
FROM_STAGE = {
    table: f"INSERT INTO {q(table)} ({cols_sql(cols)}) SELECT {cols_sql(cols)} FROM {q(stage(table))}"
    for table, (_, cols, _, _, _) in APPEND.items()
    if table not in PACKED
}


#: A batch's stream positions and hourly row counts in one statement (arrays of columns).
BOOKKEEPING = (
    "WITH o AS ("
    + Sql(True).offsets(
        "SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::timestamptz[], "
        "$6::timestamptz[])"
    )
    + "), h AS ("
    + Sql(True).hours("SELECT * FROM unnest($7::text[], $8::timestamptz[], $9::bigint[])")
    + ") SELECT 1"
)
