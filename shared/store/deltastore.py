"""Storing book deltas as runs, exactly once (the writer's side of :mod:`.deltapack`).

A delta is Kalshi's (conn, sid, xseq); a stored run holds many, so no unique index can refuse
one delta. Instead, per subscription, the writer knows the highest xseq stored (its
*high-water mark*, read once per subscription from the table, then kept): a delta above it is
new (the live stream, in order); a delta at or below it (a journal replay, a re-sent batch, a
producer re-publishing, a late delta of one subscription from another publisher) is looked up
in the stored runs that may hold its xseq (a bounded index range, :data:`MAX_SPAN`) and stored
only when none does, unless the writer already knows (:mod:`.deltaknown`: what it stored itself
since it read the mark). Out-of-order arrival is therefore correct, merely slower. The unique key
(conn, sid, first_xseq) still refuses a run written twice.

The caches (market ids, high-water marks, what is known) change only with a committed transaction:
:meth:`DeltaRuns.mark` / :meth:`rollback` undo what a failed statement or savepoint taught them.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

from shared.store.deltaknown import Known
from shared.store.deltapack import (
    DAY_US,
    MAX_SPAN,
    DeltaTuple,
    Run,
    by_subscription,
    column,
    decode,
    one_run,
    run_of,
    run_of_columns,
    split,
)
from shared.store.types import us_to_datetime

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_XSEQ = itemgetter(2)
Key = tuple[int, int]
Mark = tuple[dict[str, int], dict[Key, int | None], set[int], dict[Key, Known]]
_COLS = '"conn", "sid", "first_xseq", "last_xseq", "n", "ts_lo", "ts_hi", "recv_lo", "body"'
_PG_INSERT = (
    f"INSERT INTO book_deltas ({_COLS}) SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], "
    "$4::bigint[], $5::integer[], $6::timestamptz[], $7::timestamptz[], $8::timestamptz[], $9::bytea[]) "
    "ON CONFLICT DO NOTHING RETURNING conn, sid, first_xseq"
)
_SQLITE_INSERT = f"INSERT OR IGNORE INTO book_deltas ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"


def partition_name(day: int) -> str:
    """book_deltas' partition of a UTC day (days since the epoch): book_deltas_pYYYYMMDD."""
    return f"book_deltas_p{us_to_datetime(day * DAY_US):%Y%m%d}"


def partition_ddl(day: int) -> list[str]:
    """PostgreSQL: the statements that make ``day``'s partition of book_deltas. An empty table
    attached to the parent (ATTACH takes a lock that lets readers run, unlike CREATE TABLE
    ... PARTITION OF); the parent's key and BRIN index are built on it by the attach. Its
    bounds are readable from the catalog (pg_get_expr(relpartbound)), as retention reads them."""
    lo, hi = us_to_datetime(day * DAY_US), us_to_datetime((day + 1) * DAY_US)
    name = partition_name(day)
    return [
        f'CREATE TABLE IF NOT EXISTS "{name}" (LIKE book_deltas INCLUDING DEFAULTS)',
        f"ALTER TABLE book_deltas ATTACH PARTITION \"{name}\" FOR VALUES FROM ('{lo.isoformat()}') "
        f"TO ('{hi.isoformat()}')",
    ]


def _clamp(v: int) -> int:
    return max(INT64_MIN, min(INT64_MAX, v))


class DeltaRuns:
    """The writer connection's delta state. ``pg``: asyncpg connection, else aiosqlite."""

    def __init__(self, pg: bool) -> None:
        self.pg = pg
        self.ids: dict[str, int] = {}
        self.hwm: dict[Key, int | None] = {}
        #: PostgreSQL: the days whose partition is known to exist.
        self.days: set[int] = set()
        #: Per subscription, which xseqs below the mark are stored (see .deltaknown).
        self.known: dict[Key, Known] = {}

    def clear(self) -> None:
        self.ids.clear()
        self.hwm.clear()
        self.days.clear()
        self.known.clear()

    def mark(self) -> Mark:
        return dict(self.ids), dict(self.hwm), set(self.days), {k: v.copy() for k, v in self.known.items()}

    def rollback(self, mark: Mark) -> None:
        self.ids, self.hwm, self.days = dict(mark[0]), dict(mark[1]), set(mark[2])
        self.known = {k: v.copy() for k, v in mark[3].items()}

    async def _partitions(self, drv: Any, runs: Sequence[Run]) -> None:
        """PostgreSQL: make the day partitions ``runs`` go to (and the next day's, so the first
        write after midnight rarely waits for the attach)."""
        days = {r.recv_lo // DAY_US for r in runs}
        days |= {d + 1 for d in days}
        for day in sorted(days - self.days):
            if await drv.fetchval("SELECT to_regclass($1) IS NULL", partition_name(day)):
                for sql in partition_ddl(day):
                    await drv.execute(sql)
            self.days.add(day)

    # ---- driver access ------------------------------------------------------------------------
    async def _fetch(self, drv: Any, pg_sql: str, lite_sql: str, *args: Any) -> list[Sequence[Any]]:
        if self.pg:
            return list(await drv.fetch(pg_sql, *args))
        async with drv.execute(lite_sql, args) as cur:
            return list(await cur.fetchall())

    # ---- the market dictionary ----------------------------------------------------------------
    async def _market_ids(self, drv: Any, tickers: set[str]) -> None:
        missing = sorted(t for t in tickers if t not in self.ids)
        if not missing:
            return
        if self.pg:
            await drv.execute(
                "INSERT INTO market_ids (ticker) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING", missing
            )
            found = await drv.fetch(
                "SELECT id, ticker FROM market_ids WHERE ticker = ANY($1::text[])", missing
            )
        else:
            await drv.executemany(
                "INSERT OR IGNORE INTO market_ids (ticker) VALUES (?)", [(t,) for t in missing]
            )
            found = []
            for i in range(0, len(missing), 500):
                part = missing[i : i + 500]
                sql = f"SELECT id, ticker FROM market_ids WHERE ticker IN ({', '.join('?' * len(part))})"
                async with drv.execute(sql, part) as cur:
                    found += list(await cur.fetchall())
        for i, t in found:
            self.ids[t] = int(i)

    # ---- exactly once -------------------------------------------------------------------------
    async def _high_water(self, drv: Any, c: int, sid: int) -> int | None:
        key = (c, sid)
        if key in self.hwm:
            return self.hwm[key]
        (row,) = await self._fetch(
            drv,
            "SELECT max(first_xseq) FROM book_deltas WHERE conn = $1 AND sid = $2",
            "SELECT max(first_xseq) FROM book_deltas WHERE conn = ? AND sid = ?",
            c, sid,
        )  # fmt: skip
        top: int | None = None
        if row[0] is not None:
            # The run ending highest starts at most MAX_SPAN below the highest start.
            (got,) = await self._fetch(
                drv,
                "SELECT max(last_xseq) FROM book_deltas WHERE conn = $1 AND sid = $2 AND first_xseq >= $3",
                "SELECT max(last_xseq) FROM book_deltas WHERE conn = ? AND sid = ? AND first_xseq >= ?",
                c, sid, _clamp(int(row[0]) - MAX_SPAN),
            )  # fmt: skip
            top = int(got[0])
        self.hwm[key] = top
        self.known[key] = Known(top)
        return top

    async def _stored(self, drv: Any, c: int, sid: int, lo: int, hi: int) -> set[int]:
        """The stored xseqs of lo..hi on one subscription."""
        runs = await self._fetch(
            drv,
            "SELECT first_xseq, body FROM book_deltas WHERE conn = $1 AND sid = $2 AND first_xseq >= $3 "
            "AND first_xseq <= $4 AND last_xseq >= $5",
            "SELECT first_xseq, body FROM book_deltas WHERE conn = ? AND sid = ? AND first_xseq >= ? "
            "AND first_xseq <= ? AND last_xseq >= ?",
            c, sid, _clamp(lo - MAX_SPAN), hi, lo,
        )  # fmt: skip
        out: set[int] = set()
        for _, body in runs:
            out.update(x for x in column(body, decode(body), "xseq") if lo <= x <= hi)
        return out

    async def _new(self, drv: Any, rows: Sequence[DeltaTuple]) -> list[DeltaTuple]:
        """The deltas of ``rows`` not stored yet (the first of any repeated in ``rows``)."""
        out: list[DeltaTuple] = []
        for (c, sid), part in by_subscription(rows).items():
            top = await self._high_water(drv, c, sid)
            xs = [r[2] for r in part]
            if (top is None or min(xs) > top) and len(set(xs)) == len(xs):
                out += part  # the live stream: all above the mark, none repeated
                continue
            known = self.known[(c, sid)]
            seen: set[int] = set()
            old = []
            if top is not None:
                for x in {x for x in xs if x <= top}:
                    stored = known.stored(x)
                    if stored is None:
                        old.append(x)
                    elif stored:
                        seen.add(x)
                old.sort()
            # Looked up in clusters of close seqs: a lookup reads only the runs near its seqs,
            # however far apart two old deltas of one batch are.
            start = 0
            for i in range(1, len(old) + 1):
                if i == len(old) or old[i] - old[i - 1] > MAX_SPAN:
                    seen |= await self._stored(drv, c, sid, old[start], old[i - 1])
                    start = i
            for r in part:
                if r[2] not in seen:
                    seen.add(r[2])
                    out.append(r)
        return out

    # ---- writing ------------------------------------------------------------------------------
    async def append(self, drv: Any, rows: Sequence[DeltaTuple], hour_us: int) -> dict[int, int]:
        """Store the deltas of ``rows`` not stored yet; returns deltas stored per hour of
        receive time (``recv // hour_us``)."""
        # Sorted by xseq (a market's messages travel together, so one subscription's arrive
        # out of order): one subscription's batch is then most often one run as it is.
        # Only that case uses the order; any other takes ``rows`` as they came.
        ordered = sorted(rows, key=_XSEQ)
        cols = list(zip(*ordered, strict=True))
        bounds = one_run(cols)
        if bounds is not None:
            rows = ordered
        top = None if bounds is None else await self._high_water(drv, cols[0][0], cols[1][0])
        xs = cols[2]
        fast = bounds is not None and (
            top is None
            or xs[0] > top
            or self.known[(cols[0][0], cols[1][0])].none_stored(xs[: bisect_right(xs, top)])
        )
        if fast:
            # The live stream: one subscription's new deltas (above the mark, or filling the
            # holes it knows of), none repeated.
            await self._market_ids(drv, set(cols[3]))
            parts: Sequence[Sequence[DeltaTuple]] = [rows]
            runs = [run_of_columns(cols, self.ids.__getitem__, bounds, max(self.ids.values()))]
        else:
            new = await self._new(drv, rows)
            if not new:
                return {}
            await self._market_ids(drv, {r[3] for r in new})
            parts = split(new)
            runs = [run_of(p, self.ids.__getitem__) for p in parts]
        stored = await self._insert(drv, runs)
        counts: dict[int, int] = {}
        for run, part in zip(runs, parts, strict=True):
            key = (run.conn, run.sid)
            if (run.conn, run.sid, run.first_xseq) not in stored:
                continue  # a run written before (its key refused it): counted as duplicates
            top = self.hwm.get(key)
            self.known[key].learn(cols[2] if fast else [r[2] for r in part], top)
            if top is None or run.last_xseq > top:
                self.hwm[key] = run.last_xseq
            recv = cols[8] if fast else [r[8] for r in part]
            lo, hi = min(recv) // hour_us, max(recv) // hour_us
            if lo == hi:  # all but once an hour
                counts[lo] = counts.get(lo, 0) + len(recv)
                continue
            for v in recv:
                h = v // hour_us
                counts[h] = counts.get(h, 0) + 1
        return counts

    async def _insert(self, drv: Any, runs: list[Run]) -> set[tuple[int, int, int]]:
        if self.pg:
            await self._partitions(drv, runs)
            cols = [list(c) for c in zip(*runs, strict=True)]
            return {(r[0], r[1], r[2]) for r in await drv.fetch(_PG_INSERT, *cols)}
        out = set()
        for run in runs:
            cur = await drv.execute(_SQLITE_INSERT, run)
            if cur.rowcount > 0:
                out.add((run.conn, run.sid, run.first_xseq))
        return out

    async def warm(self, drv: Any) -> None:
        """PostgreSQL: parse and plan the insert once (an empty one writes nothing)."""
        if self.pg:
            await drv.fetch(_PG_INSERT, *([] for _ in range(9)))
