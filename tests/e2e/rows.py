"""Rows as the simulator sent them and as the database stored them, and their comparison."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.config import DbConfig
from shared.store import deltaread
from shared.store.engine import make_engine
from shared.units import ONE_DOLLAR, parse_count, parse_price

#: A WS row's identity -> what it says. Deltas/snapshots are keyed by (simulator connection, sid,
#: seq); trades by id; tickers by (ticker, ts ms, what it says, its occurrence among equals).
Rows = dict[tuple[Any, ...], tuple[Any, ...]]
#: kind -> row key -> {simulator connection: wall-clock ns the row left on it}.
Via = dict[str, dict[tuple[Any, ...], dict[int, int]]]


def compare(truth: dict[str, Rows], stored: dict[str, Rows]) -> dict[str, dict[str, Any]]:
    """Per kind: rows missing from the database, rows it has that were never sent, rows that differ."""
    out: dict[str, dict[str, Any]] = {}
    for kind, want in truth.items():
        got = stored[kind]
        missing = [k for k in want if k not in got]
        extra = [k for k in got if k not in want]
        differ = [(k, want[k], got[k]) for k in want if k in got and got[k] != want[k]]
        out[kind] = {
            "sent": len(want),
            "stored": len(got),
            "missing": missing,
            "extra": extra,
            "differ": differ,
        }
    return out


def ticker_value(m: dict[str, Any]) -> tuple[Any, ...]:
    """What a WS ticker message says, as the writer stores it in ``ticks`` (an empty side reads
    bid 0 / ask $1, like the connector's parse)."""

    def price(field: str, empty: int | None) -> int | None:
        raw = m.get(field)
        return empty if raw in (None, "") else parse_price(str(raw))

    return (
        price("price_dollars", None),
        price("yes_bid_dollars", 0),
        price("yes_ask_dollars", ONE_DOLLAR),
        parse_count(m["volume_fp"]),
        parse_count(m["open_interest_fp"]),
    )


def parse_levels(levels: list[list[str]]) -> tuple[tuple[int, int], ...]:
    return tuple(sorted((parse_price(p), parse_count(c)) for p, c in levels))


async def read_rows(
    db: DbConfig, truth: dict[str, Rows]
) -> tuple[dict[str, Rows], dict[tuple[int, int, int], int], set[tuple[str, int]]]:
    engine = make_engine(db)
    try:
        async with engine.connect() as conn:
            # Packed in runs: read through the store's one unpacking path (recv as integer us).
            deltas = [
                (c, sid, xseq, ticker, side, price, delta, recv)
                async for part in deltaread.deltas(conn, deltaread.DeltaFilter())
                for c, sid, xseq, ticker, side, price, delta, _, recv in part
            ]
            snaps = (
                await conn.execute(
                    text("SELECT conn, sid, xseq, ticker, yes, no, recv FROM book_snapshots WHERE xseq > 0")
                )
            ).all()
            trades = (
                await conn.execute(text("SELECT trade_id, ticker, yes_price, count, taker_side FROM trades"))
            ).all()
            ticks = (
                await conn.execute(
                    text(
                        "SELECT ticker, ts, last_price, yes_bid, yes_ask, volume, open_interest FROM ticks "
                        "WHERE source = 'ws' ORDER BY epoch, seq"
                    )
                )
            ).all()
    finally:
        await engine.dispose()
    by_conn: dict[int, list[tuple[str, tuple[Any, ...], tuple[Any, ...]]]] = {}
    recv: dict[tuple[int, int, int], int] = {}  # (connector conn, sid, xseq) -> recv (us)
    for c, sid, xseq, ticker, side, price, delta, r in deltas:
        by_conn.setdefault(int(c), []).append(
            ("delta", (int(sid), int(xseq)), (ticker, side, int(price), int(delta)))
        )
        recv[(int(c), int(sid), int(xseq))] = _us(r)
    snap_recv = {(ticker, _us(r)) for _, _, _, ticker, _, _, r in snaps}
    for c, sid, xseq, ticker, yes, no, r in snaps:
        recv[(int(c), int(sid), int(xseq))] = _us(r)
        # The stored NO side is in NO prices like Kalshi's snapshot (use_yes_price is off).
        yes_l = tuple(sorted((int(p), int(s)) for p, s in json.loads(yes)))
        no_l = tuple(sorted((int(p), int(s)) for p, s in json.loads(no)))
        by_conn.setdefault(int(c), []).append(("snapshot", (int(sid), int(xseq)), (ticker, yes_l, no_l)))
    out: dict[str, Rows] = {"delta": {}, "snapshot": {}, "trade": {}, "ticker": {}}
    sim_conns = {k[0] for kind in ("delta", "snapshot") for k in truth[kind]}
    recv_at: dict[tuple[int, int, int], int] = {}
    for c, items in by_conn.items():
        sim = _same_connection(items, truth, sim_conns)
        for kind, (sid, xseq), value in items:
            # Unmatched connections keep the connector's id (negated): all their rows are "extra".
            out[kind][(sim if sim is not None else -c, sid, xseq)] = value
            if sim is not None:
                recv_at[(sim, sid, xseq)] = recv[(c, sid, xseq)]
    for tid, ticker, yes_price, count, taker in trades:
        out["trade"][(tid,)] = (ticker, int(yes_price), int(count), taker)
    # In receive order (the connector's epoch, then its seq), as the truth numbers equal messages.
    seen: Counter[tuple[Any, ...]] = Counter()
    for ticker, ts, *fields in ticks:
        value = tuple(None if v is None else int(v) for v in fields)
        ident = (ticker, _ms(ts), value)
        out["ticker"][(*ident, seen[ident])] = value
        seen[ident] += 1
    return out, recv_at, snap_recv


def snapshot_key_collisions(
    truth: dict[str, Rows],
    missing: list[tuple[Any, ...]],
    stored: tuple[dict[tuple[int, int, int], int], set[tuple[str, int]]],
) -> list[tuple[Any, ...]]:
    """Missing WS snapshots that arrived in the same receive batch as a stored snapshot of the
    same market: both carry the batch's receive time, and book_snapshots' primary key
    (ticker, recv) keeps only the first. Proven from the frames next to the missing one
    (seq - 1, seq + 1 on the same subscription), which were received in that same batch."""
    recv_at, snap_recv = stored
    out = []
    for key in missing:
        c, sid, seq = key
        ticker = truth["snapshot"][key][0]
        for n in (seq - 1, seq + 1):
            r = recv_at.get((c, sid, n))
            if r is not None and (ticker, r) in snap_recv:
                out.append(key)
                break
    return out


def _us(ts: Any) -> int:
    if isinstance(ts, (int, float)):
        return int(ts)
    return (ts - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _same_connection(
    items: list[tuple[str, tuple[Any, ...], tuple[Any, ...]]], truth: dict[str, Rows], sim_conns: set[int]
) -> int | None:
    """The simulator connection whose frames a stored connection holds: the connector numbers
    connections by start time (ns), the simulator 1, 2, ...; the rows themselves tell which is which."""
    sample = sorted(items, key=lambda i: (i[0] != "snapshot", i[1]))[:20]
    best, hits = None, 0
    for sim in sim_conns:
        n = sum(truth[kind].get((sim, *key)) == value for kind, key, value in sample)
        if n > hits:
            best, hits = sim, n
    return best


def _ms(ts: Any) -> int:
    if isinstance(ts, (int, float)):
        return int(ts) // 1000
    return int(ts.timestamp() * 1000 + 0.5)


async def read_counts(db: DbConfig) -> dict[str, int]:
    engine = make_engine(db)
    try:
        async with engine.connect() as conn:
            return await counts_on(conn)
    finally:
        await engine.dispose()


async def counts_on(conn: AsyncConnection) -> dict[str, int]:
    """Rows in each streamed table, over an open connection (for callers that poll)."""
    # A book_deltas row is a run of n deltas.
    n = (await conn.execute(text("SELECT COALESCE(SUM(n), 0) FROM book_deltas"))).scalar_one()
    out = {"book_deltas": int(n)}
    for table in ("book_snapshots", "trades", "ticks"):
        out[table] = int((await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())
    return out
