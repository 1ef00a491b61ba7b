"""Writing batches: one transaction per batch = rows + stream positions + hourly counts.

Both stores talk to the driver directly (the SQLAlchemy engine only opens the
connection) and take timestamps as integer microseconds. SQLite: ``executemany`` +
``INSERT OR IGNORE``. PostgreSQL: a table's rows go by COPY into a per-connection temp
staging table, then ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``; small row sets
(where COPY's fixed cost dominates) go as one ``INSERT ... SELECT FROM unnest(arrays)``.
A bulk row set within one hour is first tried as a COPY straight into its table, in a
savepoint: the unique keys refuse it if any row is already stored (then it takes the
staging path), so it stores the same rows for less than half the server's work.
State tables are upserted with ``executemany``; stream_offsets only ever moves forward,
so a batch written twice (its commit reply was lost) is harmless.

Errors are *transient*, *data* or *bug* (:mod:`services.writer.errors` decides). A
batch that keeps failing on data is written row by row (``isolate``) and the refused rows
are reported, so one bad message cannot stall the stream; a bug is raised as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import asyncpg
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.writer.core import Batch, StreamKey
from services.writer.errors import classify
from services.writer.rows import HOUR_US, PollContent, Row
from shared.store.deltastore import DeltaRuns
from shared.store.schema import APPEND, PACKED, stream_offsets, ticks
from shared.store.sql import BOOKKEEPING, COPY_MIN_ROWS, FROM_STAGE, UNNEST, Sql, integer_timestamps, q, stage


class Rejected(NamedTuple):
    table: str
    key: str
    error: str


@dataclass(slots=True)
class WriteResult:
    inserted: dict[str, int] = field(default_factory=dict)
    candidates: dict[str, int] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)


def _count(status: str) -> int:
    """Rows affected, from a command status such as ``INSERT 0 42``."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class Store:
    """One long-lived connection that writes batches. Not for concurrent use."""

    pg = False

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sql = Sql(self.pg)
        self._conn: AsyncConnection | None = None
        self._drv: Any = None
        #: Book deltas go packed in runs (shared.store.deltastore), exactly once by xseq.
        self.deltas = DeltaRuns(self.pg)

    # ---- connection --------------------------------------------------------------------------
    async def _driver(self) -> Any:
        if self._drv is None:
            conn = await self.engine.connect()
            try:
                raw = await conn.get_raw_connection()
                drv = raw.driver_connection
                await self._prepare(drv)
            except BaseException:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.invalidate(), 5)
                raise
            self._conn, self._drv = conn, drv
        return self._drv

    async def _prepare(self, drv: Any) -> None:
        """Per-connection setup."""

    async def warm(self) -> None:
        """Open the writing connection now (at start), not on the first batch."""
        await self._driver()

    async def reset(self) -> None:
        """Drop the connection (after an error, or at the end): it never goes back to the pool."""
        conn, self._conn, self._drv = self._conn, None, None
        self.deltas.clear()
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.invalidate(), 5)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 5)

    async def close(self) -> None:
        await self.reset()

    # ---- state -------------------------------------------------------------------------------
    async def load_state(self) -> tuple[dict[StreamKey, int], dict[str, PollContent]]:
        """Committed stream positions and the last stored poll snapshot of every market."""
        async with self.engine.connect() as conn:
            so = stream_offsets.c
            offsets = {
                (r.publisher, r.epoch, r.kind): r.seq
                for r in await conn.execute(select(so.publisher, so.epoch, so.kind, so.seq))
            }
            t = ticks.c
            latest = ticks.alias("later")
            newest = (
                select(func.max(latest.c.ts))
                .where(latest.c.ticker == t.ticker, latest.c.source == "poll")
                .scalar_subquery()
            )
            rows = await conn.execute(
                select(
                    t.ticker, t.status, t.yes_bid, t.yes_ask, t.yes_bid_size, t.yes_ask_size,
                    t.last_price, t.volume, t.open_interest,
                ).where(t.source == "poll", t.ts == newest)
            )  # fmt: skip
            polls: dict[str, PollContent] = {r[0]: tuple(r[1:]) for r in rows}
        return offsets, polls

    # ---- writing -----------------------------------------------------------------------------
    async def write(self, batch: Batch, now_us: int, *, isolate: bool = False) -> WriteResult:
        raise NotImplementedError

    async def _body(self, drv: Any, batch: Batch, now_us: int, isolate: bool) -> WriteResult:
        res = WriteResult()
        per_hour: dict[tuple[str, int], int] = {}
        for table, rows in batch.rows.items():
            if not rows:
                continue
            res.candidates[table] = len(rows)
            if table in PACKED:
                counts = await self._append_deltas(drv, rows, isolate, res)
            elif isolate:
                counts = await self._isolated_append(drv, table, rows, res)
            else:
                counts = await self._append(drv, table, rows, batch.hours[table])
            for hour, n in counts.items():
                res.inserted[table] = res.inserted.get(table, 0) + n
                per_hour[(table, hour)] = per_hour.get((table, hour), 0) + n
        for table, cols, rows in batch.upserts:
            sql = self.sql.upsert(table, cols)
            if isolate:
                for row in rows:
                    await self._one(drv, sql, row, table, res)
            else:
                await self._executemany(drv, sql, rows)
        hour_rows = [(t, h * HOUR_US, n) for (t, h), n in per_hour.items() if n]
        offsets = [(k[0], k[1], k[2], seq, recv // 1000, now_us) for k, (seq, recv) in batch.offsets.items()]
        await self._bookkeeping(drv, hour_rows, offsets)
        return res

    async def _bookkeeping(self, drv: Any, hour_rows: list[Row], offsets: list[Row]) -> None:
        """Rows per hour and the stream positions, in the batch's transaction."""
        if hour_rows:
            await self._executemany(drv, self.sql.hours(), hour_rows)
        await self._executemany(drv, self.sql.offsets(), offsets)

    async def _append_deltas(
        self, drv: Any, rows: list[Row], isolate: bool, res: WriteResult
    ) -> dict[int, int]:
        if not isolate:
            return await self.deltas.append(drv, rows, HOUR_US)
        counts: dict[int, int] = {}
        for row in rows:
            mark = self.deltas.mark()
            try:
                got = await self._in_savepoint(drv, self.deltas.append(drv, [row], HOUR_US))
            except Exception as exc:
                self.deltas.rollback(mark)
                if classify(exc) != "data":
                    raise
                _reject(res, "book_deltas", row, exc)
                continue
            for hour, n in got.items():
                counts[hour] = counts.get(hour, 0) + n
        return counts

    async def _in_savepoint(self, drv: Any, work: Any) -> Any:
        """Await ``work`` in a savepoint: undone alone when it raises."""
        raise NotImplementedError

    async def _isolated_append(
        self, drv: Any, table: str, rows: list[Row], res: WriteResult
    ) -> dict[int, int]:
        sql = self.sql.insert_ignore(table)
        recv_i = APPEND[table].recv_index
        counts: dict[int, int] = {}
        for row in rows:
            if await self._one(drv, sql, row, table, res):
                hour = row[recv_i] // HOUR_US
                counts[hour] = counts.get(hour, 0) + 1
        return counts

    async def _append(self, drv: Any, table: str, rows: list[Row], hours: set[int]) -> dict[int, int]:
        """Insert-or-ignore ``rows``; returns rows inserted per hour of receive time."""
        raise NotImplementedError

    async def _executemany(self, drv: Any, sql: str, rows: list[Row]) -> None:
        raise NotImplementedError

    async def _one(self, drv: Any, sql: str, row: Row, table: str, res: WriteResult) -> int:
        """Execute one row in a savepoint; a data error rejects the row. Returns rows changed."""
        raise NotImplementedError


def _reject(res: WriteResult, table: str, row: Row, exc: BaseException) -> None:
    key = ", ".join(repr(v)[:40] for v in row[:3])
    res.rejected.append(Rejected(table, key, f"{type(exc).__name__}: {exc}"[:300]))


class SqliteStore(Store):
    async def write(self, batch: Batch, now_us: int, *, isolate: bool = False) -> WriteResult:
        db = await self._driver()
        await db.execute("BEGIN IMMEDIATE")
        try:
            res = await self._body(db, batch, now_us, isolate)
            await db.commit()
        except BaseException:
            self.deltas.clear()  # it may have learnt ids and marks of the undone transaction
            with contextlib.suppress(Exception):
                await db.rollback()
            raise
        return res

    async def _in_savepoint(self, db: Any, work: Any) -> Any:
        await db.execute("SAVEPOINT kx_row")
        try:
            out = await work
        except BaseException:
            await db.execute("ROLLBACK TO kx_row")
            await db.execute("RELEASE kx_row")
            raise
        await db.execute("RELEASE kx_row")
        return out

    async def _append(self, db: Any, table: str, rows: list[Row], hours: set[int]) -> dict[int, int]:
        sql = self.sql.insert_ignore(table)
        if len(hours) == 1:
            cur = await db.executemany(sql, rows)
            return {next(iter(hours)): max(cur.rowcount, 0)}
        recv_i = APPEND[table].recv_index
        split: dict[int, list[Row]] = {}
        for row in rows:
            split.setdefault(row[recv_i] // HOUR_US, []).append(row)
        out = {}
        for hour, part in split.items():
            cur = await db.executemany(sql, part)
            out[hour] = max(cur.rowcount, 0)
        return out

    async def _executemany(self, db: Any, sql: str, rows: list[Row]) -> None:
        await db.executemany(sql, rows)

    async def _one(self, db: Any, sql: str, row: Row, table: str, res: WriteResult) -> int:
        await db.execute("SAVEPOINT kx_row")
        try:
            cur = await db.execute(sql, row)
        except Exception as exc:
            await db.execute("ROLLBACK TO kx_row")
            await db.execute("RELEASE kx_row")
            if classify(exc) != "data":
                raise
            _reject(res, table, row, exc)
            return 0
        await db.execute("RELEASE kx_row")
        return max(cur.rowcount, 0)


class PgStore(Store):
    pg = True

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        #: Staging tables of the current connection (any failure replaces the connection).
        self._staged: set[str] = set()
        #: Tables whose last bulk write met stored keys: they go through staging until a
        #: batch comes without any.
        self._conflicted: set[str] = set()

    async def _prepare(self, drv: asyncpg.Connection) -> None:
        # This connection only ever writes, and is discarded (never pooled) after use.
        await integer_timestamps(drv)
        self._staged = set()

    async def warm(self) -> None:
        """Open the connection and prepare the bulk statements (the book deltas' insert, the
        bookkeeping): the first batch after a start then costs what the others do. Staging
        tables of the other tables come with their first COPY."""
        drv: asyncpg.Connection = await self._driver()
        try:
            async with drv.transaction():
                await self.deltas.warm(drv)
                # Empty arrays: writes nothing, but parses the statement and resolves its types.
                await drv.execute(BOOKKEEPING, *([] for _ in range(9)))
        except BaseException:
            await self.reset()
            raise

    async def _stage_for(self, drv: asyncpg.Connection, table: str) -> str:
        """The session's staging table for ``table``, created at its first COPY. It lives as
        long as the session; ON COMMIT DELETE ROWS empties it at each commit without the
        catalog churn of TRUNCATE or the bloat of DELETE."""
        name = stage(table)
        if table not in self._staged:
            await drv.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {q(name)} "
                f"(LIKE {q(table)} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )
            self._staged.add(table)
        return name

    async def reset(self) -> None:
        drv = self._drv
        if drv is not None:
            with contextlib.suppress(Exception):
                drv.terminate()
        await super().reset()

    async def write(self, batch: Batch, now_us: int, *, isolate: bool = False) -> WriteResult:
        drv: asyncpg.Connection = await self._driver()
        try:
            async with drv.transaction():
                return await self._body(drv, batch, now_us, isolate)
        except BaseException:
            self.deltas.clear()  # it may have learnt ids and marks of the undone transaction
            raise

    async def _in_savepoint(self, drv: asyncpg.Connection, work: Any) -> Any:
        async with drv.transaction():
            return await work

    async def _append(
        self, drv: asyncpg.Connection, table: str, rows: list[Row], hours: set[int]
    ) -> dict[int, int]:
        args: list[Any]
        if len(rows) >= COPY_MIN_ROWS and len(hours) == 1 and table not in self._conflicted:
            counts = await self._copy_direct(drv, table, rows, next(iter(hours)))
            if counts is not None:
                return counts
        if len(rows) >= COPY_MIN_ROWS:
            staging = await self._stage_for(drv, table)
            await drv.copy_records_to_table(staging, records=rows, columns=list(APPEND[table].columns))
            insert, args = FROM_STAGE[table], []
        else:
            insert, args = UNNEST[table], [list(col) for col in zip(*rows, strict=True)]
        if len(hours) == 1:
            n = _count(await drv.execute(insert + " ON CONFLICT DO NOTHING", *args))
            if n == len(rows):
                self._conflicted.discard(table)  # a clean batch: the next one may go direct
            return {next(iter(hours)): n}
        out = {}
        n = len(args)
        for hour in sorted(hours):
            status = await drv.execute(
                f'{insert} WHERE "recv" >= ${n + 1} AND "recv" < ${n + 2} ON CONFLICT DO NOTHING',
                *args,
                hour * HOUR_US,
                (hour + 1) * HOUR_US,
            )
            out[hour] = _count(status)
        return out

    async def _copy_direct(
        self, drv: asyncpg.Connection, table: str, rows: list[Row], hour: int
    ) -> dict[int, int] | None:
        """COPY straight into ``table``, in a savepoint: the live stream rarely repeats a key,
        and this skips the staging table and the per-row conflict checks (the server's work
        about halves). A key already stored (or twice in the batch) makes the unique index
        refuse the COPY: it is undone and the batch takes the staging path, which skips the
        duplicates; so do the table's next batches until one arrives without duplicates."""
        try:
            async with drv.transaction():
                await drv.copy_records_to_table(table, records=rows, columns=list(APPEND[table].columns))
        except asyncpg.exceptions.UniqueViolationError:
            self._conflicted.add(table)
            return None
        return {hour: len(rows)}

    async def _executemany(self, drv: asyncpg.Connection, sql: str, rows: list[Row]) -> None:
        await drv.executemany(sql, rows)

    async def _bookkeeping(self, drv: asyncpg.Connection, hour_rows: list[Row], offsets: list[Row]) -> None:
        # One statement, one round trip: on a busy machine each round trip waits for the
        # server process to be scheduled.
        hours = [list(c) for c in zip(*hour_rows, strict=True)] if hour_rows else [[], [], []]
        await drv.execute(BOOKKEEPING, *(list(c) for c in zip(*offsets, strict=True)), *hours)

    async def _one(self, drv: asyncpg.Connection, sql: str, row: Row, table: str, res: WriteResult) -> int:
        try:
            async with drv.transaction():
                status = await drv.execute(sql, *row)
        except Exception as exc:
            if classify(exc) != "data":
                raise
            _reject(res, table, row, exc)
            return 0
        return _count(status)


def open_store(engine: AsyncEngine) -> Store:
    return SqliteStore(engine) if engine.dialect.name == "sqlite" else PgStore(engine)
