"""Deterministic synthetic streams of every stored kind, for the writer's tests and bench.

Natural keys are distinct except for deliberate duplicates: copies of earlier
deltas, trades, snapshots, tickers and lifecycle events re-published as new bus
messages (what a reconnecting producer does), which must be stored once. Poll
snapshots repeat their market's previous content now and then, which must not be
stored again.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.writer.rows import BatchBuilder, Row
from shared import bus
from shared.messages import (
    BookDelta,
    BookSnapshot,
    EventLifecycle,
    FeeUpdate,
    Gap,
    MarketLifecycle,
    MarketMeta,
    Message,
    PollSnapshot,
    PriceRange,
    Signal,
    Ticker,
    Trade,
    WorkerEvent,
)
from shared.store import deltaread
from shared.store.schema import APPEND, PACKED, STATE, metadata
from shared.store.types import datetime_to_us

BASE_NS = 1_793_700_000_000_000_000  # 2026-11-03


def tickers(n: int) -> list[str]:
    return [f"KXSYN-26NOV03T{i:03d}-YES" for i in range(n)]


def deltas(n: int, *, markets: int = 50, conn: int = 1, sid: int = 1, start_seq: int = 1) -> list[BookDelta]:
    """Only book deltas (the bulk of real traffic): the bench's stream."""
    names = tickers(markets)
    out: list[BookDelta] = []
    for i in range(n):
        out.append(
            BookDelta(
                ticker=names[i % markets],
                market_id=f"m-{i % markets}",
                conn=conn,
                sid=sid,
                xseq=start_seq + i,
                side="yes" if i % 2 else "no",
                price=100 * (1 + i % 97),
                delta=(i % 13 - 6) * 100 or 100,
                ts_exch=BASE_NS // 1_000_000 + i // 10,
                ts_recv=BASE_NS + i * 1_000,
            )
        )
    return out


def mixed(
    n: int, *, seed: int = 1, markets: int = 6, duplicates: float = 0.05, conn: int = 7
) -> list[Message]:
    """About ``n`` messages of every stored kind, in a plausible order."""
    rng = random.Random(seed)
    names = tickers(markets)
    out: list[Message] = []
    xseq = 0
    trade_no = 0
    clock = BASE_NS
    last_poll: dict[str, PollSnapshot] = {}
    dupable: list[Message] = []

    def tick() -> tuple[int, int]:
        nonlocal clock
        clock += rng.randint(1, 50) * 1_000_000  # ms apart: distinct exchange times
        return clock // 1_000_000, clock

    for t in names:
        ts_exch, ts_recv = tick()
        out.append(
            MarketMeta(
                ticker=t, event_ticker=t.rsplit("-", 1)[0], series_ticker="KXSYN", title=f"Market {t}",
                yes_sub_title="Yes", no_sub_title="No", status="active", category="Sports",
                open_ms=ts_exch, close_ms=ts_exch + 86_400_000, price_ranges=[PriceRange(100, 9900, 100)],
                fee_type="quadratic", fee_multiplier_ppm=70_000, ts_recv=ts_recv,
            )
        )  # fmt: skip
        out.append(
            EventLifecycle(
                event_ticker=t.rsplit("-", 1)[0], series_ticker="KXSYN", title="Event", strike_ms=ts_exch,
                ts_exch=ts_exch, ts_recv=ts_recv,
            )
        )  # fmt: skip
        xseq += 1
        out.append(
            BookSnapshot(
                ticker=t, market_id=f"id-{t}", conn=conn, sid=1, xseq=xseq,
                yes=[(4000, 1000), (4100, 250)], no=[(5500, 700)], ts_exch=ts_exch, ts_recv=ts_recv,
            )
        )  # fmt: skip
    while len(out) < n:
        t = rng.choice(names)
        ts_exch, ts_recv = tick()
        r = rng.random()
        msg: Message
        if r < 0.55:
            xseq += 1
            msg = BookDelta(
                ticker=t, market_id=f"id-{t}", conn=conn, sid=1, xseq=xseq, side=rng.choice(("yes", "no")),
                price=rng.randint(1, 99) * 100, delta=rng.choice((-1, 1)) * rng.randint(1, 5000),
                ts_exch=ts_exch, ts_recv=ts_recv,
            )  # fmt: skip
        elif r < 0.65:
            trade_no += 1
            yes = rng.randint(1, 99) * 100
            msg = Trade(
                trade_id=f"tr-{seed}-{trade_no}", ticker=t, yes_price=yes, no_price=10_000 - yes,
                count=rng.randint(1, 10_000), taker_side=rng.choice(("yes", "no")),
                ts_exch=ts_exch, ts_recv=ts_recv,
            )  # fmt: skip
        elif r < 0.75:
            msg = Ticker(
                ticker=t, market_id=f"id-{t}", price=rng.randint(1, 99) * 100, yes_bid=4000, yes_ask=4200,
                yes_bid_size=1000, yes_ask_size=500, last_trade_size=100, volume=rng.randint(0, 10**9),
                open_interest=rng.randint(0, 10**7), dollar_volume=rng.randint(0, 10**12),
                dollar_open_interest=rng.randint(0, 10**12), ts_exch=ts_exch, ts_recv=ts_recv,
            )  # fmt: skip
        elif r < 0.87:
            prev = last_poll.get(t)
            if prev is not None and rng.random() < 0.5:  # unchanged market: same content, later time
                msg = msgspec.structs.replace(prev, ts_recv=ts_recv, ts_exch=None)
            else:
                msg = PollSnapshot(
                    ticker=t, status="active", yes_bid=rng.choice((None, 3900, 4000)), yes_ask=4300,
                    yes_bid_size=rng.randint(0, 5000), yes_ask_size=200, last_price=4100,
                    volume=rng.randint(0, 10**6), open_interest=77, ts_recv=ts_recv,
                )  # fmt: skip
            last_poll[t] = msg
        elif r < 0.90:
            msg = MarketLifecycle(
                ticker=t, event_type=rng.choice(("activated", "deactivated", "close_date_updated")),
                close_ms=ts_exch + 3_600_000, is_deactivated=rng.random() < 0.5,
                ts_exch=ts_exch, ts_recv=ts_recv,
            )  # fmt: skip
        elif r < 0.92:
            msg = FeeUpdate(
                event_ticker=t.rsplit("-", 1)[0], fee_type_override=rng.choice((None, "flat")),
                fee_multiplier_ppm_override=rng.choice((None, 35_000)), ts_exch=ts_exch, ts_recv=ts_recv,
            )  # fmt: skip
        elif r < 0.94:
            msg = Gap(
                conn=conn, sid=1, expected=xseq + 1, received=xseq + 3, tickers=[t], reason="seq jump",
                status=rng.choice(("open", "recovered")), detected_ms=ts_exch,
                ts_exch=ts_exch, ts_recv=ts_recv,
            )  # fmt: skip
        elif r < 0.955:
            msg = BookSnapshot(
                ticker=t, market_id=f"id-{t}", conn=0, sid=0, xseq=0, yes=[(3900, 100)], no=[],
                source="rest", ts_recv=ts_recv,
            )  # fmt: skip
        elif r < 0.97:
            msg = Signal(
                ticker=t, strategy="complement", side="yes", price=4000, size=1000, fair_ppm=420_000,
                edge=12_345, fees=7_000, legs=[t], detail="synthetic", ts_exch=ts_exch, ts_recv=ts_recv,
            )  # fmt: skip
        else:
            event = rng.choice(("ready", "restarted"))
            msg = WorkerEvent(worker="synthetic", event=event, pid=42, ts_recv=ts_recv)
        out.append(msg)
        if isinstance(msg, BookDelta | Trade | BookSnapshot | Ticker | MarketLifecycle):
            dupable.append(msg)
        if dupable and rng.random() < duplicates:
            out.append(msgspec.structs.replace(rng.choice(dupable)))
    return out


def expected_tables(msgs: Iterable[Message]) -> dict[str, set[Row]]:
    """What the database must hold after storing ``msgs`` in order (timestamps as int us):
    append rows deduplicated by natural key (the first stored wins), state rows as the
    messages set them one after another."""
    msgs = list(msgs)
    builder = BatchBuilder({})
    for m in msgs:
        builder.add(m)
    out: dict[str, set[Row]] = {}
    for table, rows in builder.rows.items():
        cols = APPEND[table].columns
        pk = [cols.index(c) for c in APPEND[table].key]
        # WS snapshots (xseq > 0) are also unique by Kalshi's (conn, sid, xseq).
        ws = [cols.index(c) for c in ("conn", "sid", "xseq")] if table == "book_snapshots" else None
        seen: set[tuple[Any, ...]] = set()
        seen_ws: set[tuple[Any, ...]] = set()
        kept: set[Row] = set()
        for row in rows:
            key = tuple(row[i] for i in pk)
            ws_key = tuple(row[i] for i in ws) if ws is not None and row[ws[2]] > 0 else None
            if key in seen or (ws_key is not None and ws_key in seen_ws):
                continue
            seen.add(key)
            if ws_key is not None:
                seen_ws.add(ws_key)
            kept.add(row)
        out[table] = kept
    model: dict[str, dict[Any, dict[str, Any]]] = {name: {} for name in STATE}
    for m in msgs:
        one = BatchBuilder({})
        one.add(m)
        for (table, key), entry in one.state.items():
            if set(entry) == {"updated"}:
                model[table].setdefault(key, dict(entry))
            else:
                model[table].setdefault(key, {}).update(entry)
    for table, entities in model.items():
        key_col, cols = STATE[table].key, STATE[table].columns
        out[table] = {tuple(k if c == key_col else e.get(c) for c in cols) for k, e in entities.items()}
    return out


def stamp(msgs: Iterable[Message], pub: str = "synth", epoch: int = 1) -> list[Message]:
    """Stamp pub/epoch/seq (per kind, from 1) as a Publisher would."""
    seqs: dict[str, int] = {}
    out = []
    for m in msgs:
        seqs[m.kind] = bus.stamp((m,), pub, epoch, seqs.get(m.kind, 0))
        out.append(m)
    return out


async def read_tables(engine: AsyncEngine, tables: Iterable[str] | None = None) -> dict[str, set[Row]]:
    """What the database holds, in the form of :func:`expected_tables` (timestamps as int us)."""
    names = list(tables) if tables is not None else [*APPEND, *STATE]
    out: dict[str, set[Row]] = {}
    async with engine.connect() as conn:
        for name in names:
            if name in PACKED:  # book deltas: read back through the store's one unpacking path
                out[name] = {
                    r async for part in deltaread.deltas(conn, deltaread.DeltaFilter()) for r in part
                }
                continue
            rows = await conn.execute(select(metadata.tables[name]))
            out[name] = {tuple(datetime_to_us(v) if isinstance(v, datetime) else v for v in r) for r in rows}
    return out
