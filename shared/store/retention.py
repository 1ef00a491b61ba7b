"""Retention: what ``[db] retention`` keeps of the stored rows, and pruning the rest.

Each append table belongs to one retention kind (:data:`KIND_TABLES`). A kind that is not
kept forever has a cutoff, ``now - retention``: its rows whose time is before the cutoff
go, a row at or after it never does. How a table's rows age is read from the schema at run
time (:func:`layout`): by ``ts`` (exchange time, else receive time); a packed table (a row
holds a run of items, ``ts_lo``..``ts_hi``, ``n`` of them) loses a row only when its newest
item, ``ts_hi``, is before the cutoff; a PostgreSQL table range-partitioned on one
timestamptz column is pruned by its partition key.

- PostgreSQL, range-partitioned on time: a partition goes (DROP, one short transaction
  each) only when its upper bound is at or before the cutoff, so it holds no row the
  retention keeps; the default partition and a MAXVALUE bound never go. What is past the
  cutoff in the partition straddling it goes as below.
- Anything else (SQLite, an unpartitioned PostgreSQL table): DELETE of at most
  ``batch_rows`` rows per statement, one short transaction each, walking the primary key
  (each batch starts where the last ended: one pass reads the table once, and the writer's
  own transactions get the database between two batches).

``table_hours`` (rows stored per table and receive hour: ``kxfeed db stats``) loses what
was pruned, in the transaction that prunes it. Gap records (kind ``gaps``) follow their
own retention only: data going never takes the gap records that describe it along.

Nothing here reads a clock or touches metrics: callers pass ``now`` and count the results.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, bindparam, delete, func, select, text, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.config import RetentionConfig
from shared.store.schema import metadata, table_hours
from shared.store.types import UtcTimestamp, datetime_to_us

#: Retention kind (a ``[db.retention]`` key) -> the table it prunes.
KIND_TABLES: dict[str, str] = {
    "deltas": "book_deltas",
    "snapshots": "book_snapshots",
    "tickers": "ticks",
    "trades": "trades",
    "lifecycle": "lifecycle",
    "gaps": "gaps",
    "signals": "signals",
    "worker_events": "worker_events",
    "fills": "fills",
    "positions": "positions",
    "orders": "orders",
    "order_groups": "order_groups",
}
HOUR_US = 3_600_000_000
#: How long a partition DROP waits for the writer's open transactions before giving up
#: (retried next pass): while it waits, new writes to the table queue behind it.
LOCK_TIMEOUT = "5s"
_UPPER = re.compile(r"^FOR VALUES FROM \(.*\) TO \((.*)\)$", re.DOTALL)


class RetentionError(Exception):
    """A table the schema does not let the retention prune (no such table, no time column,
    no primary key): a mismatch between the schema and :data:`KIND_TABLES`."""


@dataclass(frozen=True, slots=True)
class Layout:
    """How a table's rows age and count."""

    #: A row goes when this (its newest time) is before the cutoff.
    newest: str
    #: Its oldest time (what "oldest kept" reports).
    oldest: str
    #: Its receive time, for the rows counted per hour (None: not counted there).
    recv: str | None
    #: Items per row (None: one), for a packed table.
    count: str | None


#: (newest, oldest) time columns, in order of preference: a row per item, or a run of items.
_AGES = (("ts", "ts"), ("ts_hi", "ts_lo"), ("recv", "recv"))


def layout(table: Table) -> Layout:
    """How ``table``'s rows age (see the module doc); ``table.info`` may name the columns
    (``newest``, ``oldest``, ``recv``, ``count``)."""

    def ts(name: str | None) -> bool:
        return name is not None and name in table.c and isinstance(table.c[name].type, UtcTimestamp)

    info = table.info
    newest, oldest = next(((n, o) for n, o in _AGES if ts(n) and ts(o)), (None, None))
    newest, oldest = info.get("newest", newest), info.get("oldest", oldest)
    if not ts(newest) or not ts(oldest):
        raise RetentionError(f"table {table.name}: no timestamp column (ts, ts_hi, recv) to age its rows by")
    recv = info.get("recv", next((c for c in ("recv", "recv_lo") if ts(c)), None))
    count = info.get("count", "n" if "n" in table.c and ts("ts_hi") else None)
    return Layout(str(newest), str(oldest), recv, count)


@dataclass(frozen=True, slots=True)
class Target:
    """One kind that is not kept forever."""

    kind: str
    table: Table
    keep: timedelta
    layout: Layout

    def cutoff(self, now: datetime) -> datetime:
        return now - self.keep


def targets(retention: RetentionConfig, tables: Mapping[str, Table] | None = None) -> list[Target]:
    """The kinds with a finite retention, their tables resolved in the schema."""
    tables = metadata.tables if tables is None else tables
    out: list[Target] = []
    for kind, seconds in retention.seconds().items():
        name = KIND_TABLES[kind]
        table = tables.get(name)
        if table is None:
            raise RetentionError(f"[db.retention] {kind}: the schema has no table {name}")
        if not table.primary_key.columns:
            raise RetentionError(f"[db.retention] {kind}: table {name} has no primary key to prune by")
        out.append(Target(kind, table, timedelta(seconds=seconds), layout(table)))
    return out


# ---- PostgreSQL partitions ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Partition:
    oid: int
    #: Schema-qualified and quoted, ready for SQL.
    name: str
    #: None: the default partition, or a MAXVALUE bound (never dropped).
    upper: datetime | None


async def _partitions(conn: AsyncConnection, table: Table) -> tuple[str, list[Partition]] | None:
    """(key column, partitions by upper bound) of a table range-partitioned on one timestamptz
    column; None for any other table (pruned by DELETE, which is right for every table)."""
    if conn.dialect.name != "postgresql":
        return None
    regclass = f'"{table.name}"'
    key = (
        await conn.execute(
            text(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod), pt.partstrat::text, pt.partnatts "
                "FROM pg_partitioned_table pt JOIN pg_attribute a "
                "ON a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0] "
                "WHERE pt.partrelid = to_regclass(:t)"
            ),
            {"t": regclass},
        )
    ).first()
    if key is None or key[2] != "r" or key[3] != 1 or key[1] != "timestamp with time zone":
        return None
    rows = (
        await conn.execute(
            text(
                "SELECT c.oid::bigint, quote_ident(n.nspname) || '.' || quote_ident(c.relname), "
                "pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
                "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE i.inhparent = to_regclass(:t)"
            ),
            {"t": regclass},
        )
    ).all()
    parts: list[Partition] = []
    for oid, name, bound in rows:
        m = _UPPER.match(bound or "")
        upper = None
        literal = m.group(1) if m else ""
        if literal.startswith("'") and literal.endswith("'"):
            # The server renders the bound in its own DateStyle: it reads it back the same way.
            value = literal[1:-1].replace("''", "'")
            parse = text("SELECT CAST(CAST(:v AS text) AS timestamptz)")
            upper = (await conn.execute(parse, {"v": value})).scalar_one()
        parts.append(Partition(int(oid), str(name), upper))
    parts.sort(key=lambda p: (p.upper is None, p.upper.timestamp() if p.upper else 0.0, p.name))
    return str(key[0]), parts


async def _droppable(
    conn: AsyncConnection, t: Target, key: str, parts: Sequence[Partition], cutoff: datetime
) -> list[Partition]:
    """The partitions wholly past the cutoff. Keyed on the rows' newest time, the bound says
    so; keyed on another time (a run's first receive time), the partition is also read for a
    row whose newest time is not past (then it stays, until a later pass)."""
    out = []
    for p in parts:
        if p.upper is None or p.upper > cutoff:
            continue
        if key != t.layout.newest:
            newer = text(f'SELECT EXISTS (SELECT 1 FROM {p.name} WHERE "{t.layout.newest}" >= :c)')
            if (await conn.execute(newer, {"c": cutoff})).scalar_one():
                continue
        out.append(p)
    return out


def _items(lay: Layout) -> str:
    """SQL: the items a set of rows holds."""
    return "count(*)" if lay.count is None else f'coalesce(sum("{lay.count}"), 0)'


# ---- dry run --------------------------------------------------------------------------------


@dataclass(slots=True)
class Plan:
    """What a prune of one kind would remove (``kxfeed db prune --dry-run``)."""

    kind: str
    table: str
    keep: timedelta
    cutoff: datetime
    #: Items (rows; deltas of a packed table) that would go, the partitions' included.
    rows: int = 0
    #: Partitions that would be dropped.
    partitions: list[str] = field(default_factory=list)
    #: The oldest time that stays (None: nothing stays).
    oldest_kept: datetime | None = None
    error: str | None = None


async def plan(engine: AsyncEngine, tgts: Sequence[Target], now: datetime) -> list[Plan]:
    out: list[Plan] = []
    for t in tgts:
        p = Plan(t.kind, str(t.table.name), t.keep, t.cutoff(now))
        try:
            async with engine.connect() as conn:
                await _plan_one(conn, t, p)
        except Exception as exc:
            p.error = describe(exc)
        out.append(p)
    return out


async def _plan_one(conn: AsyncConnection, t: Target, p: Plan) -> None:
    oldest = t.table.c[t.layout.oldest]
    newest = t.table.c[t.layout.newest]
    old: list[Any] = [newest < p.cutoff]
    parted = await _partitions(conn, t.table)
    if parted is not None:
        gone = await _droppable(conn, t, parted[0], parted[1], p.cutoff)
        for part in gone:
            p.rows += int(
                (await conn.execute(text(f"SELECT {_items(t.layout)} FROM {part.name}"))).scalar_one()
            )
        p.partitions = [part.name for part in gone]
        old.append(text("tableoid <> ALL(CAST(:gone AS oid[]))").bindparams(gone=[part.oid for part in gone]))
    # What no dropped partition takes (the partition straddling the cutoff, an unpartitioned
    # table) goes row by row in batches.
    count = select(text(_items(t.layout))).select_from(t.table).where(*old)
    p.rows += int((await conn.execute(count)).scalar_one())
    p.oldest_kept = (await conn.execute(select(func.min(oldest)).where(newest >= p.cutoff))).scalar_one()


# ---- pruning --------------------------------------------------------------------------------


@dataclass(slots=True)
class Pruned:
    """What one prune of one kind removed; ``error`` when it stopped on one (what went before
    it is committed and stays gone)."""

    kind: str
    table: str
    cutoff: datetime
    #: Items removed (rows; deltas of a packed table).
    rows: int = 0
    partitions: list[str] = field(default_factory=list)
    error: str | None = None


#: Called after every committed batch: (table, items removed, partition dropped or "").
Progress = Callable[[str, int, str], None]


async def prune(
    engine: AsyncEngine,
    tgts: Sequence[Target],
    now: datetime,
    *,
    batch_rows: int,
    pause_s: float = 0.0,
    progress: Progress | None = None,
) -> list[Pruned]:
    """Remove every row past its kind's retention; a table that fails does not stop the rest."""
    if batch_rows < 1:
        raise ValueError(f"batch_rows {batch_rows}: at least 1")
    out: list[Pruned] = []
    for t in tgts:
        res = Pruned(t.kind, str(t.table.name), t.cutoff(now))
        try:
            await _prune_one(engine, t, res, batch_rows, pause_s, progress)
        except Exception as exc:
            res.error = describe(exc)
        out.append(res)
    return out


async def _prune_one(
    engine: AsyncEngine, t: Target, res: Pruned, batch_rows: int, pause_s: float, progress: Progress | None
) -> None:
    async with engine.connect() as conn:
        parted = await _partitions(conn, t.table)
        gone = None if parted is None else await _droppable(conn, t, parted[0], parted[1], res.cutoff)
    for part in gone or ():
        n = await _drop(engine, t, part)
        res.rows += n
        res.partitions.append(part.name)
        if progress is not None:
            progress(res.table, n, part.name)
    # The rest past the cutoff (the partition straddling it, or an unpartitioned table) in
    # bounded batches, so a retention is exact on every backend, partitioned or not.
    await _delete_batches(engine, t, res, batch_rows, pause_s, progress)


async def _drop(engine: AsyncEngine, t: Target, part: Partition) -> int:
    """Drop one partition and take its items out of table_hours, in one transaction. Rows the
    writer adds to it between the count and the drop (rows already past the retention) go
    uncounted there: locking the partition first would deadlock against such a write."""
    lay = t.layout
    async with engine.begin() as conn:
        await conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
        if lay.recv is None:
            n = int((await conn.execute(text(f"SELECT {_items(lay)} FROM {part.name}"))).scalar_one())
            await conn.execute(text(f"DROP TABLE {part.name}"))
            return n
        hour = f'floor(extract(epoch FROM "{lay.recv}") / 3600)::bigint'
        per_hour = await conn.execute(text(f"SELECT {hour}, {_items(lay)} FROM {part.name} GROUP BY 1"))
        hours = {int(h) * HOUR_US: int(n) for h, n in per_hour}
        await conn.execute(text(f"DROP TABLE {part.name}"))
        await _uncount(conn, str(t.table.name), hours)
    return sum(hours.values())


async def _delete_batches(
    engine: AsyncEngine, t: Target, res: Pruned, batch_rows: int, pause_s: float, progress: Progress | None
) -> None:
    table, lay = t.table, t.layout
    pk = list(table.primary_key.columns)
    key = tuple_(*pk)
    old = table.c[lay.newest] < res.cutoff
    back = [table.c[c] for c in (lay.recv, lay.count) if c is not None]
    after: tuple[Any, ...] | None = None
    while True:
        conds = [old] if after is None else [old, key > tuple_(*after)]
        # The batch's last key, read before the write transaction: on SQLite a transaction that
        # reads first and writes second fails at once when the writer committed in between.
        async with engine.connect() as conn:
            last = (
                await conn.execute(select(*pk).where(*conds).order_by(*pk).offset(batch_rows - 1).limit(1))
            ).first()
        stmt = delete(table).where(*conds, *([] if last is None else [key <= tuple_(*last)]))
        async with engine.begin() as conn:
            if not back:
                n = (await conn.execute(stmt)).rowcount
            else:
                hours: Counter[int] = Counter()
                for r in await conn.execute(stmt.returning(*back)):
                    items = 1 if lay.count is None else int(r[-1])
                    if lay.recv is None:
                        hours[-1] += items
                    else:
                        hours[datetime_to_us(r[0]) // HOUR_US * HOUR_US] += items
                n = sum(hours.values())
                hours.pop(-1, None)
                await _uncount(conn, str(table.name), hours)
        res.rows += n
        if progress is not None:
            progress(res.table, n, "")
        if last is None:
            return
        after = tuple(last)
        await asyncio.sleep(pause_s)


async def _uncount(conn: AsyncConnection, table: str, hours: Mapping[int, int]) -> None:
    """Take pruned items out of the items counted per receive hour. An item is counted in the
    hour of its own receive time, at or after its row's (a packed run's first): what an hour
    does not hold is taken from the next ones. An hour left with none goes."""
    h = table_hours.c
    for hour, n in sorted(hours.items()):
        left = n
        later = await conn.execute(
            select(h.hour, h.rows)
            .where(h.table_name == table, h.hour >= bindparam("b_hour", hour, type_=UtcTimestamp()))
            .order_by(h.hour)
            .limit(48)
        )
        for at, rows in later.all():
            if left <= 0:
                break
            take = min(left, int(rows))
            left -= take
            await conn.execute(
                update(table_hours).where(h.table_name == table, h.hour == at).values(rows=h.rows - take)
            )
    await conn.execute(delete(table_hours).where(h.table_name == table, h.rows <= 0))


def describe(exc: BaseException) -> str:
    """One line for a log or a terminal (no traceback: the caller says which table)."""
    line = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {line[:300]}"
