"""Fallback polling against the real simulator: the connector loses its feed (the exchange
drops the connection and refuses handshakes for a while); the poller polls top of book for
the connector's markets, marked fallback, and stops once the feed is back."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from services.connector.worker import ConnectorWorker
from services.poller.worker import PollerWorker
from shared.control import arequest
from shared.messages import BookState, PollSnapshot

from .test_poller_support import Rig, metric, rig


def outages() -> float:
    return metric("kxfeed_poller_feed_outages_total", expected="true") + metric(
        "kxfeed_poller_feed_outages_total", expected="false"
    )


async def start_poller(r: Rig) -> PollerWorker:
    """The poller, once it sees the connector's feed up and knows the markets."""
    poller: PollerWorker = r.start(PollerWorker)  # type: ignore[assignment]
    await r.until(
        lambda: poller.stats().get("feeds_up") == 1 and poller.stats().get("markets", 0) > 0, 10, "poller"
    )
    return poller


def test_fallback_switches_on_and_off_with_the_feed(tmp_path: Path) -> None:
    async def body() -> None:
        async with rig(
            tmp_path,
            connector={"heartbeat_interval_s": 0.2},
            poller={"fallback_after": 1.0, "poll_interval_s": 0.0, "status_interval_s": 0.5},
        ) as r:
            conn: ConnectorWorker = r.start(ConnectorWorker)  # type: ignore[assignment]
            await r.until(lambda: conn.ready, 10, "connector subscribed")
            poller = await start_poller(r)
            await asyncio.sleep(1.5)  # longer than fallback_after: a healthy feed triggers nothing
            assert not [p for p in r.tap.of(PollSnapshot) if p.fallback]
            on, off, down = (
                metric("kxfeed_poller_fallback_switches_total", to="on"),
                metric("kxfeed_poller_fallback_switches_total", to="off"),
                outages(),
            )
            followed = set(conn.markets.tickers())

            r.sim.faults.inject("auth401", seconds=2.5)
            r.sim.faults.inject("disconnect")
            lost = time.monotonic()
            await r.until(lambda: poller.stats().get("fallback_active") == 1, 5, "fallback on")
            switched_on = time.monotonic() - lost
            assert 0.9 <= switched_on <= 2.5, switched_on
            state = await arequest(r.cfg.poller.control, "fallback")
            assert state["feeds"]["connector"]["up"] is False and set(state["markets"]) == followed
            await r.until(
                lambda: {p.ticker for p in r.tap.of(PollSnapshot) if p.fallback} == followed,
                5,
                "every market polled",
            )
            await r.until(lambda: poller.stats().get("fallback_active") == 0, 10, "fallback off")
            off_at = time.time_ns()
            assert conn.ready and poller.stats().get("feeds_up") == 1
            # Off because the feed is back: every market's book is VALID again per the connector.
            valid = {s.ticker for s in r.tap.of(BookState) if s.valid and s.pub == "connector"}
            assert followed <= valid
            assert metric("kxfeed_poller_fallback_switches_total", to="on") - on == 1
            assert metric("kxfeed_poller_fallback_switches_total", to="off") - off == 1
            assert outages() - down == 1
            polls = [p for p in r.tap.of(PollSnapshot) if p.fallback]
            assert all(p.pub == "poller" and p.status for p in polls)
            await asyncio.sleep(1.0)
            late = [p for p in r.tap.of(PollSnapshot) if p.fallback and p.ts_recv > off_at]
            assert not late, f"{len(late)} fallback polls after the feed came back"

    asyncio.run(body())


def test_fallback_flag_off_never_polls(tmp_path: Path) -> None:
    async def body() -> None:
        async with rig(
            tmp_path,
            connector={"heartbeat_interval_s": 0.2},
            poller={"fallback": False, "fallback_after": 0.3, "poll_interval_s": 0.0},
        ) as r:
            poller: PollerWorker = r.start(PollerWorker)  # type: ignore[assignment]
            await r.until(lambda: poller.stats().get("markets", 0) > 0, 10, "discovery")
            await asyncio.sleep(1.0)  # no connector at all: the feed is down the whole time
            assert poller.stats().get("feeds_up") == 0
            assert poller.stats().get("fallback_active") == 0
            assert not [p for p in r.tap.of(PollSnapshot) if p.fallback]

    asyncio.run(body())


def test_a_peer_collector_that_carries_the_markets_keeps_the_fallback_off(tmp_path: Path) -> None:
    """This host's collector "a" never runs; its peer "b" carries every market: no fallback."""

    async def body() -> None:
        async with rig(
            tmp_path,
            connector={"heartbeat_interval_s": 0.2, "collector": "a", "peers": ["b"]},
            poller={"fallback_after": 1.0, "poll_interval_s": 0.0, "status_interval_s": 0.5},
        ) as r:
            conn = ConnectorWorker(r.cfg, instance="b")
            assert conn.worker_id == "connector-b"
            r.workers[conn.worker_id] = conn
            r.tasks[conn.worker_id] = asyncio.create_task(conn.serve())
            await r.until(lambda: conn.ready, 10, "connector-b subscribed")
            await start_poller(r)
            await asyncio.sleep(1.5)  # longer than fallback_after
            assert not [p for p in r.tap.of(PollSnapshot) if p.fallback]
            state = await arequest(r.cfg.poller.control, "fallback")
            assert state["feeds"]["connector-a"]["up"] is False
            assert state["feeds"]["connector-b"]["up"] is True and state["markets"] == []

    asyncio.run(body())
