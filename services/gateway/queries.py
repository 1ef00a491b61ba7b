"""The gateway's own reads of the database (SQLAlchemy Core): the market list, one market, the
signals page. Snapshots, trades and deltas are :mod:`shared.store.history`'s (the same range
queries as ``kxfeed db history``); gaps are :func:`shared.store.queries.gap_report`.

Pages are keyset-paginated: each query orders by a unique key (time first) and continues
strictly after the last row of the previous page, so a page never repeats or skips a row
however rows arrive meanwhile. ``limit + 1`` rows are read to know whether a next page exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, exists, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import ColumnClause

from shared.store.schema import book_snapshots, events, markets, signals, trades
from shared.store.types import datetime_to_us, us_to_datetime


@dataclass(frozen=True)
class RowPage:
    rows: list[Row[Any]]
    #: The key of the last row when another page follows, else None.
    next_key: tuple[Any, ...] | None


@dataclass(frozen=True)
class Range:
    """What a time-range route asks: [since, until) on ``ts`` (as history's), after a cursor."""

    since: datetime | None
    until: datetime | None
    after: tuple[Any, ...] | None
    limit: int


def _after(cols: Sequence[ColumnElement[Any]], values: Sequence[Any]) -> ColumnElement[bool]:
    """(c1, c2, ...) > (v1, v2, ...), spelt out: both dialects, and each value bound with its
    column's type (the time columns are integers on SQLite)."""
    if not cols:
        return false()
    head, rest = cols[0], cols[1:]
    if not rest:
        return head > values[0]
    return or_(head > values[0], and_(head == values[0], _after(rest, values[1:])))


def _key_values(key: tuple[Any, ...], time_first: bool = True) -> list[Any]:
    """A cursor's values as the columns hold them: the leading time is microseconds on the wire."""
    values = list(key)
    if time_first:
        values[0] = us_to_datetime(int(values[0]))
    return values


def _cursor_of(row: Row[Any], names: Sequence[str]) -> tuple[Any, ...]:
    first = getattr(row, names[0])
    return (datetime_to_us(first), *(getattr(row, n) for n in names[1:]))


async def _page(
    engine: AsyncEngine,
    table: Any,
    where: list[ColumnElement[bool]],
    time_col: str,
    key: Sequence[str],
    r: Range,
) -> RowPage:
    cols = [table.c[n] for n in key]
    if r.since is not None:
        where.append(table.c[time_col] >= r.since)
    if r.until is not None:
        where.append(table.c[time_col] < r.until)
    if r.after is not None:
        where.append(_after(cols, _key_values(r.after)))
    q = select(table).where(and_(*where)).order_by(*cols).limit(r.limit + 1)
    async with engine.connect() as conn:
        rows = list((await conn.execute(q)).all())
    more = len(rows) > r.limit
    rows = rows[: r.limit]
    return RowPage(rows, _cursor_of(rows[-1], key) if more and rows else None)


SIGNAL_KEY = ("ts", "strategy", "ticker", "side")
SIGNAL_CURSOR: tuple[type, ...] = (int, str, str, str)


async def signals_page(engine: AsyncEngine, ticker: str | None, strategy: str | None, r: Range) -> RowPage:
    where: list[ColumnElement[bool]] = []
    if ticker is not None:
        where.append(signals.c.ticker == ticker)
    if strategy is not None:
        where.append(signals.c.strategy == strategy)
    return await _page(engine, signals, where, "ts", SIGNAL_KEY, r)


# ---- markets -----------------------------------------------------------------------------
_MARKET_COLS = [*markets.c, events.c.title.label("event_title")]


def _like(col: ColumnClause[Any] | ColumnElement[Any], text: str) -> ColumnElement[bool]:
    return func.lower(col).contains(text.lower(), autoescape=True)


async def markets_page(
    engine: AsyncEngine,
    *,
    series: str | None,
    event: str | None,
    status: str | None,
    q: str | None,
    after: str | None,
    limit: int,
) -> RowPage:
    m = markets.c
    where: list[ColumnElement[bool]] = []
    if series is not None:
        where.append(m.series_ticker == series)
    if event is not None:
        where.append(m.event_ticker == event)
    if status is not None:
        where.append(m.status == status)
    if q is not None:
        cols = (m.ticker, m.title, m.yes_sub_title, m.no_sub_title, m.event_ticker, events.c.title)
        where.append(or_(*(_like(c, q) for c in cols)))
    if after is not None:
        where.append(m.ticker > after)
    query = (
        select(*_MARKET_COLS)
        .select_from(markets.outerjoin(events, events.c.event_ticker == m.event_ticker))
        .where(and_(*where))
        .order_by(m.ticker)
        .limit(limit + 1)
    )
    async with engine.connect() as conn:
        rows = list((await conn.execute(query)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return RowPage(rows, (rows[-1].ticker,) if more and rows else None)


async def market(engine: AsyncEngine, ticker: str) -> Row[Any] | None:
    query = (
        select(*_MARKET_COLS)
        .select_from(markets.outerjoin(events, events.c.event_ticker == markets.c.event_ticker))
        .where(markets.c.ticker == ticker)
    )
    async with engine.connect() as conn:
        return (await conn.execute(query)).first()


async def known(engine: AsyncEngine, ticker: str) -> bool:
    """Whether the database knows ``ticker`` at all: its market row, or a book stored of it
    (a market whose metadata has not arrived yet still has history)."""
    query = select(
        or_(
            exists().where(markets.c.ticker == ticker),
            exists().where(book_snapshots.c.ticker == ticker),
            exists().where(trades.c.ticker == ticker),
        )
    )
    async with engine.connect() as conn:
        return bool((await conn.execute(query)).scalar())


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(select(1))
