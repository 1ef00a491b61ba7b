"""Range queries over stored market data: the one module with the SQL behind ``kxfeed db
history``, ``kxfeed export``, ``kxfeed book --at`` and the gateway's history routes.

The API is typed and independent of the table layout: a :class:`Query` names a kind
(deltas, snapshots, trades, tickers), a market or a series, and a half-open time window
``[since, until)`` on ``ts`` (exchange time when the exchange gave one, else receive time).
Rows come back as tuples in :data:`KINDS` column order, exact: prices, counts and seqs as
integers, times as integer microseconds since the Unix epoch (UTC).

- :func:`page`: at most ``limit`` rows after an opaque cursor, and the cursor of the next
  page (keyset paging: a page costs the same at any depth, rows written meanwhile are not
  skipped or repeated);
- :func:`batches`: every row of a query in bounded batches from one server-side cursor
  (export: memory bounded by the batch, whatever the window holds);
- :func:`gap_rows`: the connector's gap records of a window (what the export writes beside
  the data, so a reader knows where the record is incomplete);
- :func:`snapshot_before` / :func:`deltas_after` / :func:`stored_seqs`: what a point-in-time
  book is rebuilt from (the rebuilding itself is :mod:`shared.book.at`).

Rows are in each kind's key order (:attr:`Kind.order`), not sorted by time across markets:
deltas by subscription and sequence (the order to apply them in), the others per market
by time. A store sorts nothing to stream them.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import msgspec
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    cast,
    extract,
    func,
    literal,
    or_,
    select,
    tuple_,
    type_coerce,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.store import deltaread
from shared.store.schema import book_snapshots, gaps, markets, ticks, trades
from shared.store.types import datetime_to_us, us_to_datetime

KindName = Literal["deltas", "snapshots", "trades", "tickers"]
ColType = Literal["int", "str", "bool", "ts", "levels"]

#: Units of integer columns (what the export writes into its schema metadata).
PRICE = "price: $0.0001 units (10000 = $1)"
COUNT = "count: hundredths of a contract (100 = 1 contract)"
DOLLARS = "dollars: whole US dollars"
LEVELS = "JSON [[price, size], ...]: price in $0.0001 units, size in hundredths of a contract"


@dataclass(frozen=True, slots=True)
class Col:
    name: str
    type: ColType
    unit: str = ""
    nullable: bool = False


@dataclass(frozen=True, slots=True)
class Kind:
    name: KindName
    columns: tuple[Col, ...]
    #: The key rows are ordered (and paged) by: columns of :attr:`columns`.
    order: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


def _c(name: str, type: ColType = "int", unit: str = "", nullable: bool = False) -> Col:
    return Col(name, type, unit, nullable)


_TIMES = (_c("ts", "ts"), _c("recv", "ts"))

KINDS: dict[str, Kind] = {
    "deltas": Kind(
        "deltas",
        (_c("ticker", "str"), _c("conn"), _c("sid"), _c("xseq"), _c("side", "str"),
         _c("price", unit=PRICE), _c("delta", unit=COUNT), *_TIMES),
        ("conn", "sid", "xseq"),
    ),
    "snapshots": Kind(
        "snapshots",
        (_c("ticker", "str"), _c("conn"), _c("sid"), _c("xseq"), _c("source", "str"),
         _c("yes", "levels", LEVELS), _c("no", "levels", LEVELS), *_TIMES),
        ("ticker", "recv", "conn", "sid", "xseq"),
    ),
    "trades": Kind(
        "trades",
        (_c("trade_id", "str"), _c("ticker", "str"), _c("yes_price", unit=PRICE),
         _c("no_price", unit=PRICE), _c("count", unit=COUNT), _c("taker_side", "str"),
         _c("is_block_trade", "bool"), _c("source", "str"), *_TIMES),
        ("ticker", "ts", "trade_id"),
    ),
    "tickers": Kind(
        "tickers",
        (_c("ticker", "str"), _c("source", "str"), _c("status", "str", nullable=True),
         _c("last_price", unit=PRICE, nullable=True), _c("yes_bid", unit=PRICE, nullable=True),
         _c("yes_bid_size", unit=COUNT), _c("yes_ask", unit=PRICE, nullable=True),
         _c("yes_ask_size", unit=COUNT), _c("last_trade_size", unit=COUNT, nullable=True),
         _c("volume", unit=COUNT), _c("open_interest", unit=COUNT),
         _c("dollar_volume", unit=DOLLARS, nullable=True),
         _c("dollar_open_interest", unit=DOLLARS, nullable=True), _c("fallback", "bool"), *_TIMES,
         _c("pub", "str"), _c("epoch"), _c("seq")),
        ("ticker", "ts", "source", "pub", "epoch", "seq"),
    ),
}  # fmt: skip

#: The gap records written beside an export (:func:`gap_rows`).
GAPS = Kind(
    "gaps",  # type: ignore[arg-type]  # not a queryable kind: its own function
    (_c("conn"), _c("sid"), _c("expected"), _c("received"), _c("status", "str"),
     _c("tickers", "str", "JSON list of the tickers the subscription carried"), _c("reason", "str"),
     _c("method", "str"), _c("detected", "ts", nullable=True), _c("recovered", "ts", nullable=True),
     *_TIMES),
    ("conn", "sid", "expected", "status"),
)  # fmt: skip

#: Tables of the kinds stored a row per item (deltas are packed: :mod:`.deltaread`).
_TABLES = {"snapshots": book_snapshots, "trades": trades, "tickers": ticks}
#: A delta row (conn, sid, xseq, ticker, side, price, delta, ts, recv) in KINDS order.
_DELTA_ORDER = (3, 0, 1, 2, 4, 5, 6, 7, 8)
Row = Sequence[Any]


class BadCursor(ValueError):
    """A cursor that :func:`page` did not hand out (or for another kind)."""


@dataclass(frozen=True, slots=True)
class Query:
    """Rows of one kind: of one market (``ticker``), of one series' markets (``series``), or
    of all; within ``[since, until)`` on ``ts`` (either end open when None; aware datetimes)."""

    kind: KindName
    ticker: str | None = None
    series: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind {self.kind!r}: one of {', '.join(KINDS)}")
        for t in (self.since, self.until):
            if t is not None and t.tzinfo is None:
                raise ValueError("since/until must be timezone-aware")


@dataclass(slots=True)
class Page:
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    #: Pass as ``after`` for the next page; None when this page is the last.
    cursor: str | None

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, r, strict=True)) for r in self.rows]


# ---- SQL building ---------------------------------------------------------------------------


def _us(col: Any, pg: bool) -> ColumnElement[int]:
    """A timestamp column as integer microseconds since the epoch, computed by the store: SQLite
    keeps it so; PostgreSQL's numeric epoch is exact, so the product is too."""
    if pg:
        return cast(extract("epoch", col) * 1_000_000, BigInteger)
    return type_coerce(col, BigInteger)


def _select(kind: Kind, table: Any, pg: bool) -> Select[Any]:
    cols = []
    for c in kind.columns:
        col = table.c[c.name]
        cols.append((_us(col, pg) if c.type == "ts" else col).label(c.name))
    return select(*cols)


def _where(q: Query, table: Any) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if q.ticker is not None:
        conds.append(table.c.ticker == q.ticker)
    if q.series is not None:
        conds.append(table.c.ticker.in_(select(markets.c.ticker).where(markets.c.series_ticker == q.series)))
    if q.since is not None:
        conds.append(table.c.ts >= q.since)
    if q.until is not None:
        conds.append(table.c.ts < q.until)
    return conds


def _statement(q: Query, pg: bool) -> Select[Any]:
    kind, table = KINDS[q.kind], _TABLES[q.kind]
    stmt = _select(kind, table, pg).where(*_where(q, table))
    return stmt.order_by(*(table.c[n] for n in kind.order))


# ---- cursors --------------------------------------------------------------------------------

_KEY = msgspec.json.Decoder(tuple[str, list[int | str]])


def _encode_cursor(kind: Kind, row: Row) -> str:
    names = kind.names
    key = [row[names.index(n)] for n in kind.order]
    raw = msgspec.json.encode((kind.name, key))
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(kind: Kind, cursor: str) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        name, key = _KEY.decode(raw)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise BadCursor("not a cursor this kxfeed handed out") from None
    if name != kind.name or len(key) != len(kind.order):
        raise BadCursor(f"a cursor of another query (kind {name!r}), not of {kind.name}")
    types = {c.name: c.type for c in kind.columns}
    out: list[Any] = []
    for n, v in zip(kind.order, key, strict=True):
        want = types[n]
        if (want == "str") != isinstance(v, str) or (isinstance(v, int) and not -(2**63) <= v < 2**63):
            raise BadCursor(f"cursor field {n}: {v!r} is not a {want}")
        out.append(us_to_datetime(v) if want == "ts" and isinstance(v, int) else v)
    return out


# ---- range queries --------------------------------------------------------------------------

MAX_PAGE = 10_000


async def page(engine: AsyncEngine, q: Query, *, after: str | None = None, limit: int = 1000) -> Page:
    """Up to ``limit`` (1..:data:`MAX_PAGE`) rows of ``q`` after the cursor ``after``."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit {limit}: 1..{MAX_PAGE}")
    if q.kind == "deltas":
        return await _delta_page(engine, q, after, limit)
    kind, table = KINDS[q.kind], _TABLES[q.kind]
    stmt = _statement(q, engine.dialect.name == "postgresql")
    if after is not None:
        key = _decode_cursor(kind, after)
        cols = [table.c[n] for n in kind.order]
        # Each value bound as its column's type (a time as the store keeps times).
        bound = (literal(v, c.type) for v, c in zip(key, cols, strict=True))
        stmt = stmt.where(tuple_(*cols) > tuple_(*bound))
    async with engine.connect() as conn:
        rows = [tuple(r) for r in await conn.execute(stmt.limit(limit + 1))]
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(kind.names, rows, _encode_cursor(kind, rows[-1]) if more else None)


async def batches(engine: AsyncEngine, q: Query, *, size: int = 50_000) -> AsyncIterator[list[Row]]:
    """Every row of ``q`` in batches of at most ``size`` rows, from one server-side cursor
    (one consistent read on PostgreSQL; on SQLite, one read transaction)."""
    if size < 1:
        raise ValueError("batch size must be >= 1")
    if q.kind == "deltas":
        async with engine.connect() as conn:
            async for part in deltaread.deltas(conn, delta_filter(q), size=size):
                yield [tuple(r[i] for i in _DELTA_ORDER) for r in part]
        return
    stmt = _statement(q, engine.dialect.name == "postgresql")
    async with engine.connect() as conn:
        result = await conn.stream(stmt.execution_options(yield_per=size))
        async for part in result.partitions(size):
            yield part  # Row objects are sequences in column order


def delta_filter(q: Query, after: tuple[int, int, int] | None = None) -> deltaread.DeltaFilter:
    """The deltas of a deltas query."""
    return deltaread.DeltaFilter(
        tickers=None if q.ticker is None else frozenset({q.ticker}),
        series=q.series,
        ts_since=None if q.since is None else datetime_to_us(q.since),
        ts_until=None if q.until is None else datetime_to_us(q.until),
        after=after,
    )


async def _delta_page(engine: AsyncEngine, q: Query, after: str | None, limit: int) -> Page:
    kind = KINDS["deltas"]
    key = None
    if after is not None:
        c, sid, x = _decode_cursor(kind, after)
        key = (c, sid, x)
    rows: list[tuple[Any, ...]] = []
    async with engine.connect() as conn:
        async for part in deltaread.deltas(conn, delta_filter(q, key), size=limit + 1):
            rows += [tuple(r[i] for i in _DELTA_ORDER) for r in part]
            if len(rows) > limit:
                break
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(kind.names, rows, _encode_cursor(kind, rows[-1]) if more else None)


async def gap_rows(
    engine: AsyncEngine,
    *,
    ticker: str | None = None,
    series: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[tuple[Any, ...]]:
    """The connector's gap records (:data:`GAPS` columns) of the window: those detected or
    recovered in it, and those still open at its start; of the subscriptions that carried
    ``ticker`` (or a market of ``series``) when one is given."""
    g = gaps.c
    stmt = _select(GAPS, gaps, engine.dialect.name == "postgresql")
    conds: list[ColumnElement[bool]] = []
    if until is not None:
        conds.append(g.ts < until)
    if since is not None:
        conds.append(or_(g.ts >= since, g.status == "open"))
    names: set[str] | None = None
    async with engine.connect() as conn:
        if series is not None:
            found = await conn.execute(select(markets.c.ticker).where(markets.c.series_ticker == series))
            names = {r[0] for r in found}
        if ticker is not None:
            names = {ticker} if names is None else names & {ticker}
        rows = [tuple(r) for r in await conn.execute(stmt.where(*conds).order_by(*GAPS.order))]
    at = GAPS.names.index("tickers")
    if names is not None:
        rows = [r for r in rows if not names.isdisjoint(msgspec.json.decode(r[at]))]
    return rows


# ---- point-in-time books ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredSnapshot:
    ticker: str
    market_id: str
    conn: int
    sid: int
    xseq: int
    yes: list[tuple[int, int]]
    no: list[tuple[int, int]]
    ts_us: int
    recv_us: int


_LEVELS = msgspec.json.Decoder(list[tuple[int, int]])


async def snapshot_before(conn: AsyncConnection, ticker: str, at: datetime) -> StoredSnapshot | None:
    """The newest sequenced (WebSocket) snapshot of ``ticker`` with ts <= ``at``: REST books
    carry no seq, so no delta can be placed after them."""
    s = book_snapshots.c
    pg = conn.dialect.name == "postgresql"
    row = (
        await conn.execute(
            select(s.market_id, s.conn, s.sid, s.xseq, s.yes, s.no, _us(s.ts, pg), _us(s.recv, pg))
            .where(s.ticker == ticker, s.xseq > 0, s.ts <= at)
            .order_by(s.ts.desc(), s.recv.desc(), s.xseq.desc())
            .limit(1)
        )
    ).first()
    if row is None:
        return None
    mid, c, sid, xseq, yes, no, ts, recv = row
    return StoredSnapshot(ticker, mid, c, sid, xseq, _LEVELS.decode(yes), _LEVELS.decode(no), ts, recv)


async def deltas_after(
    conn: AsyncConnection, snap: StoredSnapshot, at: datetime, *, size: int = 10_000
) -> AsyncIterator[list[Row]]:
    """The deltas of ``snap``'s market on its subscription after it, up to ts <= ``at``, in
    sequence order: (xseq, side, price, delta, ts us), in batches."""
    f = deltaread.DeltaFilter(
        conn=snap.conn, sid=snap.sid, xseq_min=snap.xseq + 1, tickers=frozenset({snap.ticker}),
        ts_max=datetime_to_us(at),
    )  # fmt: skip
    async for part in deltaread.deltas(conn, f, size=size):
        yield [(r[2], r[4], r[5], r[6], r[7]) for r in part]


async def stored_seqs(conn: AsyncConnection, c: int, sid: int, first: int, last: int) -> int:
    """How many seqs of ``first..last`` on one subscription are stored (deltas of every market
    and WS snapshots): fewer than the span means a hole the book may have missed."""
    s = book_snapshots.c
    n_s = select(func.count()).where(s.conn == c, s.sid == sid, s.xseq >= first, s.xseq <= last)
    snaps = int((await conn.execute(n_s)).scalar_one())
    f = deltaread.DeltaFilter(conn=c, sid=sid, xseq_min=first, xseq_max=last)
    return snaps + await deltaread.count(conn, f)


async def price_ranges(conn: AsyncConnection, ticker: str) -> str | None:
    """The market's stored price ladder (JSON text), None when unknown."""
    row = (await conn.execute(select(markets.c.price_ranges).where(markets.c.ticker == ticker))).first()
    return None if row is None else row[0]
