"""The gap filler against the real simulator: connector, orderbook and gap filler on a real bus.

The exchange is made to ignore ``get_snapshot`` (the in-band recovery) and the connector's
resubscribe is pushed out of reach, so only REST can repair an injected gap.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import zmq

from services.connector.worker import ConnectorWorker
from services.gapfill.worker import GapfillWorker
from services.orderbook.worker import OrderbookWorker
from shared.bus import Publisher
from shared.control import arequest
from shared.messages import BookSnapshot, Control, Gap

from .test_connector_support import channel_sid
from .test_poller_support import Rig, metric, rig


def suppress_get_snapshot(r: Rig) -> list[str]:
    """The exchange drops every get_snapshot command (the connector's in-band recovery)."""
    dropped: list[str] = []
    hub = r.sim.hub
    original = hub.command

    def command(conn: Any, raw: str | bytes) -> None:
        text = raw.decode() if isinstance(raw, bytes) else raw
        if "get_snapshot" in text:
            dropped.append(text)
            return
        original(conn, raw)

    hub.command = command  # type: ignore[method-assign]
    return dropped


def books_match_truth(r: Rig, tickers: list[str]) -> None:
    ob: OrderbookWorker = r.workers["orderbook"]  # type: ignore[assignment]
    for t in tickers:
        b = ob.builder.books[t]
        assert b.valid, (t, b.reason)
        yes, no = r.sim.truth.book(t)
        assert (dict(b.yes), dict(b.no)) == (yes, no), f"{t}: the book differs from the exchange"


def test_gap_without_in_band_recovery_is_repaired_from_rest(tmp_path: Path) -> None:
    async def body() -> None:
        async with rig(
            tmp_path,
            connector={"resync_timeout_s": 60.0},  # no resubscribe within the test
            gapfill={"rest_after": 0.3, "audit_interval_s": 0.0},
        ) as r:
            r.start(OrderbookWorker)
            r.start(GapfillWorker)
            conn: ConnectorWorker = r.start(ConnectorWorker)  # type: ignore[assignment]
            ob: OrderbookWorker = r.workers["orderbook"]  # type: ignore[assignment]
            markets = lambda: conn.markets.tickers()  # noqa: E731
            await r.until(lambda: conn.ready and bool(markets()), 10, "connector subscribed")
            await r.until(
                lambda: ob.builder.valid_count() >= len(markets()) and not ob.builder.invalid,
                10,
                "books valid",
            )
            r.sim.pause()
            assert await r.sim.drained(5)
            repairs = metric("kxfeed_gapfill_rest_repairs_total")
            rest_gaps = metric("kxfeed_gapfill_gaps_recovered_total", method="rest")
            dropped = suppress_get_snapshot(r)
            sid = channel_sid(conn, "orderbook_delta")
            r.sim.faults.inject("gap", sid=sid, count=2)
            opened: list[Gap] = []

            def gap_seen() -> bool:
                opened[:] = [g for g in r.tap.of(Gap) if g.status == "open" and g.pub == "connector"]
                return bool(opened)

            t0 = time.monotonic()
            while not gap_seen():  # steps until a book frame after the withheld ones shows the gap
                assert time.monotonic() - t0 < 10, "the connector never saw the gap"
                r.sim.step(5)
                await asyncio.sleep(0.05)
            gap = opened[0]
            assert gap.sid == sid and gap.received > gap.expected
            await r.until(
                lambda: any(g.pub == "gapfill" and g.method == "rest" for g in r.tap.of(Gap)),
                10,
                "REST repair",
            )
            fixed = next(g for g in r.tap.of(Gap) if g.pub == "gapfill" and g.method == "rest")
            assert (fixed.conn, fixed.sid, fixed.expected) == (gap.conn, gap.sid, gap.expected)
            assert fixed.method == "rest" and fixed.tickers == gap.tickers
            assert (
                fixed.recovered_ms is not None and fixed.recovered_ms >= fixed.detected_ms == gap.detected_ms
            )
            # In-band recovery really was suppressed: the connector still waits for its snapshots.
            assert dropped and conn.recovery.open
            assert not [g for g in r.tap.of(Gap) if g.pub == "connector" and g.status == "recovered"]
            rest_snaps = {s.ticker for s in r.tap.of(BookSnapshot) if s.source == "rest"}
            assert set(gap.tickers) <= rest_snaps
            assert all(
                s.xseq == 0 and s.pub == "gapfill" for s in r.tap.of(BookSnapshot) if s.source == "rest"
            )
            await r.until(lambda: not ob.builder.invalid, 5, "orderbook valid again")
            books_match_truth(r, markets())
            assert metric("kxfeed_gapfill_rest_repairs_total") - repairs == 1
            assert metric("kxfeed_gapfill_gaps_recovered_total", method="rest") - rest_gaps == 1
            stats = r.workers["gapfill"].stats()
            assert stats["open_gaps"] == 0 and stats["rest_repairs"] >= 1

    asyncio.run(body())


def test_snapshot_requests_are_answered_from_rest(tmp_path: Path) -> None:
    async def body() -> None:
        async with rig(tmp_path, gapfill={"audit_interval_s": 0.0, "refetch_after_s": 5.0}) as r:
            gf: GapfillWorker = r.start(GapfillWorker)  # type: ignore[assignment]
            await r.until(lambda: gf.ready, 5, "gap filler up")
            wanted = r.sim.tickers[:3]
            ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
            p = Publisher(ctx, r.cfg.bus.xsub, "orderbook")
            assert await p.wait_for_subscriber("ctl.gapfill")
            r.sim.pause()
            p.publish(Control(target="gapfill", cmd="snapshot", tickers=wanted, ts_recv=time.time_ns()))
            await r.until(
                lambda: {s.ticker for s in r.tap.of(BookSnapshot) if s.source == "rest"} == set(wanted),
                5,
                "REST snapshots",
            )
            for s in r.tap.of(BookSnapshot):
                assert (dict(s.yes), dict(s.no)) == r.sim.truth.book(s.ticker)
            # Asked again at once: not fetched twice (refetch_after_s); the control socket says so.
            reply = await arequest(r.cfg.gapfill.control, "snapshot", {"tickers": wanted})
            assert reply == {"requested": []}
            unknown = await arequest(r.cfg.gapfill.control, "snapshot", {"tickers": ["NO-SUCH-MARKET"]})
            assert unknown == {"requested": ["NO-SUCH-MARKET"]}
            await r.until(
                lambda: metric("kxfeed_gapfill_unknown_markets_total") >= 1, 5, "unknown market counted"
            )
            p.close(0)
            ctx.destroy(linger=0)

    asyncio.run(body())
