"""Read queries behind ``kxfeed db latest | gaps | stats`` (and the gap filler's trade check)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.store import deltaread
from shared.store.schema import (
    APPEND_TABLES,
    STATE_TABLES,
    book_snapshots,
    fills,
    gaps,
    markets,
    metadata,
    orders,
    positions,
    table_hours,
    ticks,
    trades,
)
from shared.store.types import us_to_datetime
from shared.units import ONE_DOLLAR

# ---- latest -------------------------------------------------------------------------------


@dataclass
class Top:
    source: str  # book | ws | poll
    ts: datetime
    yes_bid: int | None
    yes_bid_size: int
    yes_ask: int | None
    yes_ask_size: int
    detail: str = ""


@dataclass
class LastTrade:
    ts: datetime
    trade_id: str
    yes_price: int
    no_price: int
    count: int
    taker_side: str


@dataclass
class StoredMarket:
    """The market's stored state row (what ``kxfeed db latest`` shows about the market itself).
    Strikes are the exact decimal text Kalshi sent; None when never said."""

    title: str | None
    status: str | None
    strike_type: str | None
    floor_strike: str | None
    cap_strike: str | None
    updated: datetime


@dataclass
class Latest:
    ticker: str
    tops: list[Top]
    trade: LastTrade | None
    market: StoredMarket | None = None

    @property
    def newest(self) -> Top | None:
        return max(self.tops, key=lambda t: t.ts) if self.tops else None


def top_of_book(yes: dict[int, int], no: dict[int, int]) -> tuple[int | None, int, int | None, int]:
    """(best YES bid, its size, best YES ask, its size): the YES ask is $1 - the best NO bid."""
    yes_bid = max((p for p, s in yes.items() if s > 0), default=None)
    no_bid = max((p for p, s in no.items() if s > 0), default=None)
    return (
        yes_bid,
        yes[yes_bid] if yes_bid is not None else 0,
        ONE_DOLLAR - no_bid if no_bid is not None else None,
        no[no_bid] if no_bid is not None else 0,
    )


def apply_delta(book: dict[int, int], price: int, delta: int) -> None:
    size = book.get(price, 0) + delta
    if size > 0:
        book[price] = size
    else:
        book.pop(price, None)


_LEVELS = msgspec.json.Decoder(list[tuple[int, int]])


async def _book_top(conn: AsyncConnection, ticker: str) -> Top | None:
    s = book_snapshots.c
    snap = (
        await conn.execute(
            select(s.recv, s.ts, s.conn, s.sid, s.xseq, s.source, s.yes, s.no)
            .where(s.ticker == ticker)
            .order_by(s.recv.desc())
            .limit(1)
        )
    ).first()
    if snap is None:
        return None
    books = {"yes": dict(_LEVELS.decode(snap.yes)), "no": dict(_LEVELS.decode(snap.no))}
    ts = snap.ts
    applied = 0
    if snap.xseq > 0:  # a WS snapshot: the deltas after it on its subscription follow it
        f = deltaread.DeltaFilter(
            conn=snap.conn, sid=snap.sid, xseq_min=snap.xseq + 1, tickers=frozenset({ticker})
        )
        async for part in deltaread.deltas(conn, f):
            for r in part:
                apply_delta(books[r[4]], r[5], r[6])
                ts = max(ts, us_to_datetime(r[7]))
                applied += 1
    yb, ybs, ya, yas = top_of_book(books["yes"], books["no"])
    detail = f"{snap.source} snapshot (conn {snap.conn} sid {snap.sid} seq {snap.xseq}) + {applied} deltas"
    return Top("book", ts, yb, ybs, ya, yas, detail)


async def latest(engine: AsyncEngine, ticker: str) -> Latest:
    async with engine.connect() as conn:
        tops: list[Top] = []
        book = await _book_top(conn, ticker)
        if book is not None:
            tops.append(book)
        t = ticks.c
        for source in ("ws", "poll"):
            row = (
                await conn.execute(
                    select(t.ts, t.yes_bid, t.yes_bid_size, t.yes_ask, t.yes_ask_size, t.status)
                    .where(t.ticker == ticker, t.source == source)
                    .order_by(t.ts.desc())
                    .limit(1)
                )
            ).first()
            if row is not None:
                detail = f"status {row.status}" if row.status else ""
                tops.append(
                    Top(source, row.ts, row.yes_bid, row.yes_bid_size, row.yes_ask, row.yes_ask_size, detail)
                )
        tr = trades.c
        trow = (
            await conn.execute(
                select(tr.ts, tr.trade_id, tr.yes_price, tr.no_price, tr.count, tr.taker_side)
                .where(tr.ticker == ticker)
                .order_by(tr.ts.desc())
                .limit(1)
            )
        ).first()
        trade = LastTrade(*trow) if trow is not None else None
        mk = markets.c
        mrow = (
            await conn.execute(
                select(mk.title, mk.status, mk.strike_type, mk.floor_strike, mk.cap_strike, mk.updated).where(
                    mk.ticker == ticker
                )
            )
        ).first()
        market = StoredMarket(*mrow) if mrow is not None else None
    return Latest(ticker, tops, trade, market)


#: Tables ``kxfeed db latest --table`` lists, newest first.
LISTED_TABLES = {"fills": fills, "positions": positions, "orders": orders}


async def recent_rows(
    engine: AsyncEngine, table: str, ticker: str | None, limit: int
) -> list[dict[str, Any]]:
    """The newest ``limit`` rows of a listed table (of one market, or of all), newest first:
    every column by name, exact integers."""
    t = LISTED_TABLES[table]
    # Ties in time (positions of one read share one) by the key: a position's bus seq.
    keys = [c.desc() for c in t.primary_key.columns]
    q = select(t).order_by(t.c.ts.desc(), t.c.recv.desc(), *keys).limit(limit)
    if ticker is not None:
        q = q.where(t.c.ticker == ticker)
    async with engine.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(q)]


async def stored_trade_ids(engine: AsyncEngine, ids: list[str], chunk: int = 500) -> set[str]:
    """Which of these trade ids the trades table holds (asked ``chunk`` ids at a time: SQLite
    and asyncpg both cap a statement's parameters)."""
    out: set[str] = set()
    async with engine.connect() as conn:
        for i in range(0, len(ids), chunk):
            q = select(trades.c.trade_id).where(trades.c.trade_id.in_(ids[i : i + chunk]))
            out.update(r[0] for r in await conn.execute(q))
    return out


# ---- gaps ---------------------------------------------------------------------------------


@dataclass
class SubscriptionRecord:
    conn: int
    sid: int
    first_seq: int
    last_seq: int
    stored: int
    holes: list[tuple[int, int]] = field(default_factory=list)  # (first missing, last missing)

    @property
    def missing(self) -> int:
        return sum(b - a + 1 for a, b in self.holes)


@dataclass
class GapEvent:
    conn: int
    sid: int
    expected: int
    received: int
    status: str
    reason: str
    method: str
    ts: datetime


@dataclass
class GapReport:
    ticker: str
    subscriptions: list[SubscriptionRecord]
    events: list[GapEvent]

    @property
    def missing(self) -> int:
        return sum(s.missing for s in self.subscriptions)

    @property
    def holes(self) -> int:
        return sum(len(s.holes) for s in self.subscriptions)


async def subscription_holes(conn: AsyncConnection, c: int, sid: int) -> SubscriptionRecord:
    """The stored sequence range of one WS subscription and the holes in it (deltas of every
    market and WS snapshots, in one pass over the subscription's seqs)."""
    s = book_snapshots.c
    snaps = sorted(
        int(x) for (x,) in await conn.execute(select(s.xseq).where(s.conn == c, s.sid == sid, s.xseq > 0))
    )
    first: int | None = None
    prev: int | None = None
    n = 0
    holes: list[tuple[int, int]] = []

    def see(x: int) -> None:
        nonlocal first, prev, n
        if prev is None:
            first = x
        elif x > prev + 1:
            holes.append((prev + 1, x - 1))
        prev = x
        n += 1

    i = 0
    async for part in deltaread.deltas(conn, deltaread.DeltaFilter(conn=c, sid=sid)):
        for r in part:
            x = r[2]
            while i < len(snaps) and snaps[i] <= x:
                see(snaps[i])
                i += 1
            see(x)
    for x in snaps[i:]:
        see(x)
    return SubscriptionRecord(c, sid, first, prev, n, holes)  # type: ignore[arg-type]  # None: nothing stored


async def gap_report(engine: AsyncEngine, ticker: str) -> GapReport:
    """Sequence holes in what is stored, per WS subscription (connection, sid) that carried
    ``ticker`` (one with a stored snapshot of it), across all markets of the subscription."""
    async with engine.connect() as conn:
        s = book_snapshots.c
        subs = (
            await conn.execute(
                select(s.conn, s.sid).where(s.ticker == ticker, s.xseq > 0).distinct().order_by(s.conn, s.sid)
            )
        ).all()
        out: list[SubscriptionRecord] = []
        for c, sid in subs:
            out.append(await subscription_holes(conn, c, sid))
        g = gaps.c
        events = []
        rows = await conn.execute(
            select(g.conn, g.sid, g.expected, g.received, g.status, g.reason, g.method, g.ts, g.tickers)
            .where(g.tickers.contains(f'"{ticker}"', autoescape=True))
            .order_by(g.ts)
        )
        for r in rows:
            if ticker in msgspec.json.decode(r.tickers):
                events.append(GapEvent(*r[:8]))
    return GapReport(ticker, out, events)


# ---- stats --------------------------------------------------------------------------------


@dataclass
class TableStats:
    table: str
    rows: int
    bytes: int | None


@dataclass
class StoreStats:
    tables: list[TableStats]
    hours: list[tuple[datetime, str, int, int | None]]  # hour, table, rows, estimated bytes


async def _table_bytes(conn: AsyncConnection) -> dict[str, int]:
    names = [str(t.name) for t in metadata.sorted_tables]
    if conn.dialect.name == "postgresql":
        out = {}
        for name in names:
            # A partitioned table has no storage of its own: its partitions' sizes add up.
            out[name] = (
                await conn.execute(
                    text(  # pg_partition_tree lists nothing for a plain table
                        "SELECT COALESCE((SELECT SUM(pg_total_relation_size(relid)) "
                        "FROM pg_partition_tree(CAST(:t AS regclass))), "
                        "pg_total_relation_size(CAST(:t AS regclass)))::bigint"
                    ),
                    {"t": name},
                )
            ).scalar_one()
        return out
    sizes: dict[str, int] = {}
    rows = await conn.execute(
        text(
            "SELECT m.tbl_name, SUM(d.pgsize) FROM dbstat AS d JOIN sqlite_master AS m ON m.name = d.name "
            "WHERE d.aggregate = 1 GROUP BY m.tbl_name"
        )
    )
    for name, size in rows:
        sizes[name] = int(size)
    return sizes


async def stats(engine: AsyncEngine, *, hours: int, now: datetime) -> StoreStats:
    """Rows and bytes per table; rows (and estimated bytes) per hour of receive time."""
    async with engine.connect() as conn:
        sizes = await _table_bytes(conn)
        h = table_hours.c
        written = dict(
            (await conn.execute(select(h.table_name, func.sum(h.rows)).group_by(h.table_name))).all()
        )
        tables: list[TableStats] = []
        for t in APPEND_TABLES:
            tables.append(TableStats(str(t.name), int(written.get(t.name) or 0), sizes.get(t.name)))
        for t in (*STATE_TABLES, metadata.tables["stream_offsets"]):
            n = (await conn.execute(select(func.count()).select_from(t))).scalar_one()
            tables.append(TableStats(str(t.name), n, sizes.get(t.name)))
        since = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=max(hours - 1, 0))
        per_hour = (
            await conn.execute(
                select(h.hour, h.table_name, h.rows).where(h.hour >= since).order_by(h.hour, h.table_name)
            )
        ).all()
    by_name = {t.table: t for t in tables}
    out_hours: list[tuple[datetime, str, int, int | None]] = []
    for hour, name, rows in per_hour:
        ts = by_name.get(name)
        est = None
        if ts is not None and ts.bytes is not None and ts.rows:
            est = ts.bytes * rows // ts.rows
        out_hours.append((hour, name, rows, est))
    return StoreStats(tables, out_hours)


def jsonable(value: Any) -> Any:
    """Dataclasses of results -> JSON-ready builtins (datetimes as ISO 8601 UTC)."""
    return msgspec.to_builtins(value)
