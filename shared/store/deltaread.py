"""Reading stored book deltas: runs selected in SQL, unpacked by :mod:`.deltapack`, merged
into (conn, sid, xseq) order and filtered per delta.

Every reader of deltas (history pages and batches, export, ``book --at``, ``db latest``, the
gap audit, the tests' read-back) goes through :func:`runs` and :func:`deltas`. Runs are
selected by what their columns bound (subscription, xseq range, ts range), then each delta is
checked against the exact filter. Runs of one subscription are disjoint in the common case; a
run written later to fill a hole (an out-of-order delta) can overlap an older one, so runs are
read in (conn, sid, first_xseq) order and held until the next run starts past them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.store.deltapack import DeltaTuple, rows_of
from shared.store.schema import book_deltas, market_ids, markets

#: Runs fetched per round trip (a run holds up to deltapack.MAX_RUN deltas).
RUNS_PER_FETCH = 64


@dataclass(frozen=True, slots=True)
class DeltaFilter:
    """Which deltas: each bound None = open. Times are integer microseconds; ``ts_until`` is
    exclusive, ``ts_max`` inclusive; ``after`` is a (conn, sid, xseq) key to start past."""

    conn: int | None = None
    sid: int | None = None
    xseq_min: int | None = None
    xseq_max: int | None = None
    tickers: frozenset[str] | None = None
    series: str | None = None
    ts_since: int | None = None
    ts_until: int | None = None
    ts_max: int | None = None
    after: tuple[int, int, int] | None = None


def statement(f: DeltaFilter) -> Select[Any]:
    """The runs that may hold deltas of ``f``, in (conn, sid, first_xseq) order."""
    d = book_deltas.c
    conds: list[Any] = []
    if f.conn is not None:
        conds.append(d.conn == f.conn)
    if f.sid is not None:
        conds.append(d.sid == f.sid)
    if f.xseq_min is not None:
        conds.append(d.last_xseq >= f.xseq_min)
    if f.xseq_max is not None:
        conds.append(d.first_xseq <= f.xseq_max)
    if f.ts_since is not None:
        conds.append(d.ts_hi >= f.ts_since)
    if f.ts_until is not None:
        conds.append(d.ts_lo < f.ts_until)
    if f.ts_max is not None:
        conds.append(d.ts_lo <= f.ts_max)
    if f.after is not None:
        c, s, x = f.after
        conds.append(
            or_(tuple_(d.conn, d.sid) > tuple_(c, s), and_(d.conn == c, d.sid == s, d.last_xseq > x))
        )
    return (
        select(d.conn, d.sid, d.first_xseq, d.last_xseq, d.body)
        .where(*conds)
        .order_by(d.conn, d.sid, d.first_xseq)
    )


async def names(conn: AsyncConnection) -> dict[int, str]:
    """The market dictionary: id -> ticker."""
    m = market_ids.c
    return {int(i): t for i, t in await conn.execute(select(m.id, m.ticker))}


async def wanted(conn: AsyncConnection, f: DeltaFilter) -> frozenset[str] | None:
    """The tickers ``f`` keeps (None: all): its tickers, and/or its series' markets."""
    keep = f.tickers
    if f.series is not None:
        found = await conn.execute(select(markets.c.ticker).where(markets.c.series_ticker == f.series))
        of_series = frozenset(r[0] for r in found)
        keep = of_series if keep is None else keep & of_series
    return keep


async def runs(conn: AsyncConnection, f: DeltaFilter) -> AsyncIterator[Sequence[Any]]:
    """The stored runs ``f`` may need (conn, sid, first_xseq, last_xseq, body), in key order."""
    result = await conn.stream(statement(f).execution_options(yield_per=RUNS_PER_FETCH))
    async for row in result:
        yield row


def _keep(f: DeltaFilter, keep: frozenset[str] | None, rows: list[DeltaTuple]) -> list[DeltaTuple]:
    lo, hi = f.xseq_min, f.xseq_max
    since, until, ts_max, after = f.ts_since, f.ts_until, f.ts_max, f.after
    out = rows
    if keep is not None:
        out = [r for r in out if r[3] in keep]
    if lo is not None or hi is not None:
        out = [r for r in out if (lo is None or r[2] >= lo) and (hi is None or r[2] <= hi)]
    if since is not None or until is not None or ts_max is not None:
        lo_ts = since if since is not None else -(2**63)
        hi_ts = min(until - 1 if until is not None else 2**63, ts_max if ts_max is not None else 2**63)
        out = [r for r in out if lo_ts <= r[7] <= hi_ts]
    if after is not None:
        out = [r for r in out if (r[0], r[1], r[2]) > after]
    return out


async def deltas(
    conn: AsyncConnection, f: DeltaFilter, *, size: int = 10_000
) -> AsyncIterator[list[DeltaTuple]]:
    """Every delta of ``f`` as DeltaRow tuples (conn, sid, xseq, ticker, side, price, delta, ts,
    recv) in (conn, sid, xseq) order, in batches of at most ``size`` (never empty)."""
    if f.tickers is not None and not f.tickers:
        return
    keep = await wanted(conn, f)
    if keep is not None and not keep:
        return
    tickers = (await names(conn)).__getitem__
    pending: list[DeltaTuple] = []  # deltas of the current subscription not yet known final
    out: list[DeltaTuple] = []
    async for run in runs(conn, f):
        c, sid, first = run[0], run[1], run[2]
        if pending and ((pending[0][0], pending[0][1]) != (c, sid) or first > pending[-1][2]):
            out += _keep(f, keep, pending)
            pending = []
            while len(out) >= size:
                yield out[:size]
                out = out[size:]
        got = rows_of(run, tickers)
        # A run overlapping the held ones (a later fill of a hole) merges into them.
        pending = sorted(pending + got, key=lambda r: r[2]) if pending else got
    out += _keep(f, keep, pending)
    for i in range(0, len(out), size):
        yield out[i : i + size]


async def count(conn: AsyncConnection, f: DeltaFilter) -> int:
    """How many deltas ``f`` selects."""
    n = 0
    async for part in deltas(conn, f):
        n += len(part)
    return n
