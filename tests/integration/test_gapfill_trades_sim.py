"""Missed trades come back from REST: the real simulator, connector, gap filler and writer on a
real bus over real sockets.

The simulator is paused and stepped while the connector has no connection (a disconnect, then
the connector killed and started again), so the trades of those steps are made with no client
to send them to; only ``/markets/trades`` has them. Afterwards every trade the simulator made
from the first one the bus carried to the last one it carried live is on the bus exactly once
(ws or rest), and the database holds each once with the same source.
"""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.connector.worker import ConnectorWorker
from services.gapfill.worker import GapfillWorker
from services.writer.worker import WriterWorker
from shared.messages import Gap, Trade
from shared.store.engine import make_engine
from shared.store.schema import gaps, trades

from .test_poller_support import Rig, metric, rig

#: Steps run while no client is connected (at 10 markets, some dozens of trades).
_DARK_STEPS = 400


def bus_trades(r: Rig) -> list[Trade]:
    return [t for t in r.tap.of(Trade)]


def sim_trade_ids(r: Rig) -> list[str]:
    """Every trade the simulator made (and still keeps), oldest first: its truth."""
    return [t.trade_id for t in r.sim.public.trades]


async def live_again(r: Rig, conn: ConnectorWorker, after: int) -> None:
    """The connector is back and live trades flow past index ``after`` of the tap's trades."""
    await r.until(lambda: conn.ready, 10, "connector back")
    await r.until(lambda: any(t.source == "ws" for t in bus_trades(r)[after:]), 15, "live trades after it")


async def dark(
    r: Rig, conn: ConnectorWorker, how: Literal["disconnect", "restart"]
) -> tuple[list[str], ConnectorWorker]:
    """Run ``_DARK_STEPS`` simulator steps while the connector has no connection (dropped, or the
    connector killed and started again), until live trades flow again. Returns the ids of the
    trades those steps made and the connector running now."""
    r.sim.pause()
    assert await r.sim.drained(5)
    await asyncio.sleep(0.3)  # what was sent has reached the bus and the gap filler
    if how == "restart":
        await r.stop("connector")
    mark = len(bus_trades(r))
    before = len(sim_trade_ids(r))
    if how == "disconnect":
        r.sim.faults.inject("disconnect")
    r.sim.step(_DARK_STEPS)  # no await in between: no connection to send these to
    made = sim_trade_ids(r)[before:]
    assert made, "the dark steps made no trade"
    if how == "restart":
        conn = r.start(ConnectorWorker)  # type: ignore[assignment]
    r.sim.resume()
    await live_again(r, conn, mark)
    return made, conn


async def stored(engine: AsyncEngine) -> dict[str, str]:
    """The trades table: source by trade id."""
    async with engine.connect() as c:
        rows = await c.execute(select(trades.c.trade_id, trades.c.source))
        return {tid: src for tid, src in rows}


async def stored_as_carried(r: Rig, engine: AsyncEngine) -> None:
    """Within 15 s the writer has stored each trade on the bus once, with the source it carried."""
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        now_stored, want = await stored(engine), {t.trade_id: t.source for t in bus_trades(r)}
        if now_stored == want or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.2)
    assert now_stored == want, "each trade stored once, with the source the bus carried"


def records(r: Rig) -> list[Gap]:
    return [g for g in r.tap.of(Gap) if g.pub == "gapfill" and g.method == "rest_trades"]


async def backfilled(r: Rig, windows: int) -> None:
    """``windows`` backfill windows recorded on the bus (their trades were published before)."""
    await r.until(lambda: len(records(r)) >= windows, 20, f"{windows} backfill window(s)")


def assert_exactly_once(r: Rig) -> dict[str, str]:
    """Every sim trade from the first the bus carried to the last it carried live is on the bus
    once. Returns the bus's source by trade id."""
    seen = bus_trades(r)
    counts = collections.Counter(t.trade_id for t in seen)
    dups = {i: n for i, n in counts.items() if n > 1}
    assert not dups, f"trades on the bus more than once: {dups}"
    truth = sim_trade_ids(r)
    first = min(truth.index(t.trade_id) for t in seen)
    last = max(truth.index(t.trade_id) for t in seen if t.source == "ws")
    span = truth[first : last + 1]
    missing = [i for i in span if i not in counts]
    assert not missing, (
        f"{len(missing)} of {len(span)} trades the exchange made never reached the bus; "
        f"gap filler: {r.workers['gapfill'].stats()}; "
        f"windows: {[(g.reason, g.expected, g.received, len(g.tickers)) for g in records(r)]}; "
        f"missing at {[truth.index(i) for i in missing][:20]} of {first}..{last}"
    )
    return {t.trade_id: t.source for t in seen}


def test_trades_missed_while_disconnected_or_killed_are_backfilled_once(tmp_path: Path) -> None:
    async def body() -> None:
        async with rig(
            tmp_path,
            gapfill={"audit_interval_s": 0.0},
            writer={"batch_ms": 50},
        ) as r:
            r.start(WriterWorker)
            gf: GapfillWorker = r.start(GapfillWorker)  # type: ignore[assignment]
            conn: ConnectorWorker = r.start(ConnectorWorker)  # type: ignore[assignment]
            await r.until(lambda: gf.ready and conn.ready, 10, "workers up")
            await r.until(lambda: len(bus_trades(r)) >= 5, 15, "live trades")
            backfilled_before = metric("kxfeed_gapfill_trades_backfilled_total")

            # 1. A disconnect: the exchange trades on while the connector reconnects.
            dark1, conn = await dark(r, conn, "disconnect")
            await backfilled(r, 1)
            sources = assert_exactly_once(r)
            rest_ids = {i for i, s in sources.items() if s == "rest"}
            assert set(dark1) <= set(sources), "the trades made while disconnected"
            # Backfilled: at least the dark steps' trades the connector never got (also any made
            # before its trade subscription was back, which the bus never carried either).
            assert rest_ids >= set(dark1) - {t.trade_id for t in bus_trades(r) if t.source == "ws"}
            assert rest_ids

            # 2. The connector killed and started again (a new epoch on the bus).
            dark2, conn = await dark(r, conn, "restart")
            await backfilled(r, 2)
            sources = assert_exactly_once(r)
            assert set(dark2) <= set(sources), "the trades made while the connector was down"
            assert all(sources[i] == "rest" for i in dark2), "no connector was running to send them"
            assert metric("kxfeed_gapfill_trades_backfilled_total") - backfilled_before == sum(
                1 for s in sources.values() if s == "rest"
            )
            recs = records(r)
            assert len(recs) >= 2 and all(g.status == "recovered" for g in recs)
            assert all(g.reason.startswith("trades:") and g.received >= g.expected for g in recs)
            assert {t.ticker for t in bus_trades(r) if t.trade_id in set(dark2)} <= set(recs[-1].tickers)

            # The writer stored each trade once, with the source the bus carried.
            r.sim.pause()
            await asyncio.sleep(0.3)
            engine = make_engine(r.cfg.db)
            try:
                await stored_as_carried(r, engine)
                async with engine.connect() as c:
                    rows = await c.execute(
                        select(gaps.c.status, gaps.c.reason).where(gaps.c.method == "rest_trades")
                    )
                    stored_windows = rows.all()
                # The windows are in the gaps table too (what `kxfeed gaps` reads).
                assert len(stored_windows) == len(records(r)) >= 2
                assert {st for st, _ in stored_windows} == {"recovered"}
            finally:
                await engine.dispose()

    asyncio.run(body())


def test_trades_missed_while_the_gap_filler_itself_was_down_are_backfilled_once(tmp_path: Path) -> None:
    """The gap filler stopped, then the connector killed: nobody saw the restart. Started again,
    the gap filler resumes from its checkpoint and backfills the dark trades; what the bus carried
    meanwhile (stored by the writer) is not published again."""

    async def body() -> None:
        async with rig(tmp_path, gapfill={"audit_interval_s": 0.0}, writer={"batch_ms": 50}) as r:
            r.start(WriterWorker)
            gf: GapfillWorker = r.start(GapfillWorker)  # type: ignore[assignment]
            conn: ConnectorWorker = r.start(ConnectorWorker)  # type: ignore[assignment]
            await r.until(lambda: gf.ready and conn.ready, 10, "workers up")
            await r.until(lambda: len(bus_trades(r)) >= 5, 15, "live trades")
            await r.stop("gapfill")
            state = Path(r.cfg.data_dir) / "gapfill" / "gapfill.trades.json"
            assert state.exists(), "the gap filler leaves its checkpoint"

            dark_ids, conn = await dark(r, conn, "restart")
            engine = make_engine(r.cfg.db)
            try:
                # What the bus carried while the gap filler was down is stored before it is back.
                live_ids = {t.trade_id for t in bus_trades(r)}
                deadline = asyncio.get_running_loop().time() + 15
                while (
                    not live_ids <= set(await stored(engine)) and asyncio.get_running_loop().time() < deadline
                ):
                    await asyncio.sleep(0.2)
                assert live_ids <= set(await stored(engine))

                r.start(GapfillWorker)
                await backfilled(r, 1)
                (rec,) = records(r)
                assert "gapfill_restart" in rec.reason and rec.status == "recovered"
                sources = assert_exactly_once(r)  # nothing the bus carried is published again
                assert set(dark_ids) <= set(sources), "the trades made while the connector was down"
                assert all(sources[i] == "rest" for i in dark_ids)
                r.sim.pause()
                await asyncio.sleep(0.3)
                await stored_as_carried(r, engine)
            finally:
                await engine.dispose()

    asyncio.run(body())
