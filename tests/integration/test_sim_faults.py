"""Every injected fault, as a plain client sees it over a real WebSocket / HTTP connection."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Any

import aiohttp
import pytest
import websockets
from websockets.frames import Frame, Opcode

from services.exchange_sim.faults import FaultError
from tests.support.sim_client import BookClient, running_sim, ws_headers


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _book_client(sim: Any, n: int = 4) -> tuple[BookClient, int]:
    c = await BookClient(sim.ws_url).connect()
    sids = await c.subscribe(["orderbook_delta"], sim.tickers[:n])
    return c, sids["orderbook_delta"]


def test_gap_skips_seq_and_the_truth_knows_which() -> None:
    async def go() -> None:
        async with running_sim(rate=300.0) as sim:
            c, sid = await _book_client(sim)
            await c.pump(quiet=0.05, limit=0.3)
            sim.faults.inject("gap", count=2)
            await c.pump(quiet=0.05, limit=0.5)
            conn = sim.hub.conns[1]
            withheld = sim.truth.gaps(conn.id)
            assert [s for s, _ in withheld] == [sid, sid]
            first = withheld[0][1]
            assert c.seq_errors == [(sid, first, first + 2)]
            # The books are now wrong until resync: a get_snapshot brings them back to the truth.
            await c.send(
                "update_subscription",
                {"sid": sid, "market_tickers": sim.tickers[:4], "action": "get_snapshot"},
            )
            await c.pump(quiet=0.05, limit=0.3)
            sim.pause()
            assert await sim.drained()
            await c.pump(quiet=0.2)
            for t in sim.tickers[:4]:
                assert c.books[t] == sim.truth.book(t)
            await c.close()

    run(go())


def test_duplicate_sends_a_frame_twice() -> None:
    async def go() -> None:
        async with running_sim(rate=300.0) as sim:
            c, sid = await _book_client(sim)
            await c.pump(quiet=0.05, limit=0.2)
            sim.faults.inject("duplicate", sid=sid)
            await c.pump(quiet=0.05, limit=0.4)
            seqs = [f["seq"] for f in c.frames if f.get("sid") == sid and "seq" in f]
            dups = [s for i, s in enumerate(seqs[1:]) if s == seqs[i]]
            assert len(dups) == 1
            assert c.seq_errors == [(sid, dups[0] + 1, dups[0])]
            await c.close()

    run(go())


def test_disconnect_abrupt_and_with_close_code() -> None:
    async def go() -> None:
        async with running_sim(rate=50.0) as sim:
            a = await BookClient(sim.ws_url).connect()
            b = await BookClient(sim.ws_url).connect()
            sim.faults.inject("disconnect", conn=1)
            with pytest.raises(websockets.ConnectionClosed) as exc:
                await a.ws.recv()
            assert exc.value.rcvd is None  # no close frame: a dropped TCP connection
            sim.faults.inject("disconnect", conn=2, code=1001)
            with pytest.raises(websockets.ConnectionClosed) as exc2:
                await b.ws.recv()
            assert exc2.value.rcvd is not None and exc2.value.rcvd.code == 1001
            assert sim.hub.conns == {}
            with pytest.raises(FaultError):
                sim.faults.inject("disconnect", conn=1)

    run(go())


def test_stall_sends_nothing_then_resumes() -> None:
    async def go() -> None:
        async with running_sim(rate=300.0, ping_interval_s=0.05) as sim:
            c, sid = await _book_client(sim)
            await c.pump(quiet=0.05, limit=0.2)
            sim.faults.inject("stall", seconds=0.6)
            t0 = time.monotonic()
            before = len(c.frames)
            with pytest.raises(TimeoutError):
                await c.next(timeout=0.45)
            assert len(c.frames) == before
            f = await c.next(timeout=2)
            assert time.monotonic() - t0 >= 0.5 and f["sid"] == sid
            await c.pump(quiet=0.05, limit=0.3)
            assert c.seq_errors == []  # stalled frames were delivered late, none lost
            await c.close()

    run(go())


def test_no_ping_stops_heartbeats_and_pongs() -> None:
    async def go() -> None:
        async with running_sim(rate=5.0, ping_interval_s=0.05) as sim:
            ws = await websockets.connect(sim.ws_url, additional_headers=ws_headers(), ping_interval=None)
            pings: list[float] = []
            send_frame = ws.protocol.send_frame

            def watch(frame: Frame) -> None:
                if frame.opcode is Opcode.PONG:
                    pings.append(time.monotonic())
                send_frame(frame)

            ws.protocol.send_frame = watch  # type: ignore[method-assign]
            await asyncio.sleep(0.4)
            assert len(pings) >= 4
            sim.faults.inject("no_ping", seconds=0.6)
            t0 = time.monotonic()
            await asyncio.sleep(0.5)
            assert not [p for p in pings if p > t0 + 0.06]
            waiter = await ws.ping(b"")
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(waiter, 0.05)  # the server doesn't answer either
            await asyncio.sleep(0.4)
            assert [p for p in pings if p > t0 + 0.6]  # and heartbeats come back
            await ws.close()

    run(go())


def test_error25_ends_the_subscription_and_resubscribe_starts_fresh() -> None:
    async def go() -> None:
        async with running_sim(rate=300.0) as sim:
            c, sid = await _book_client(sim)
            await c.pump(quiet=0.05, limit=0.2)
            sim.faults.inject("error25")
            await c.pump(quiet=0.05, limit=0.3)
            errors = c.of_type("error")
            last = max(f["seq"] for f in c.frames if f.get("sid") == sid and f["type"] != "error")
            assert errors == [  # the last seq it sent, which the error does not take (December AsyncAPI)
                {
                    "type": "error",
                    "sid": sid,
                    "seq": last,
                    "msg": {"code": 25, "msg": "Subscription buffer overflow"},
                }
            ]
            after = c.frames.index(errors[0])
            assert not [f for f in c.frames[after + 1 :] if f.get("sid") == sid]
            await c.send("list_subscriptions")
            await c.pump(quiet=0.1)
            assert c.frames[-1] == {"id": 2, "type": "ok", "msg": []}
            sids = await c.subscribe(["orderbook_delta"], sim.tickers[:2])
            assert sids["orderbook_delta"] != sid
            await c.pump(quiet=0.05, limit=0.2)
            assert c.last_seq[sids["orderbook_delta"]] >= 2
            await c.close()

    run(go())


def test_slow_consumer_overflow_is_error_25() -> None:
    async def go() -> None:
        async with running_sim(rate=1000.0, out_buffer_frames=50) as sim:
            c, sid = await _book_client(sim, 8)
            sim.faults.inject("stall", seconds=0.4)
            await c.pump(quiet=0.6, limit=2)
            assert any(
                f.get("type") == "error" and f["msg"]["code"] == 25 and f["sid"] == sid for f in c.frames
            )
            assert sim.hub.conns[1].session.subs == {}
            await c.close()

    run(go())


def test_auth401_refuses_the_next_handshake_only() -> None:
    async def go() -> None:
        async with running_sim() as sim:
            sim.faults.inject("auth401")
            with pytest.raises(websockets.InvalidStatus) as exc:
                await websockets.connect(sim.ws_url, additional_headers=ws_headers())
            assert exc.value.response.status_code == 401
            ok = await websockets.connect(sim.ws_url, additional_headers=ws_headers())
            await ok.close()

    run(go())


def test_rest_429_storm_and_5xx() -> None:
    async def go() -> None:
        async with running_sim() as sim, aiohttp.ClientSession() as http:
            url = f"{sim.rest_url}/exchange/status"
            sim.faults.inject("rate429", count=2)
            statuses = []
            for _ in range(3):
                async with http.get(url) as r:
                    statuses.append((r.status, await r.json()))
            assert statuses[0] == (429, {"error": "too many requests"}) == statuses[1]
            assert statuses[2][0] == 200
            sim.faults.inject("rest5xx", seconds=0.3, status=503)
            async with http.get(url) as r:
                assert r.status == 503
            await asyncio.sleep(0.35)
            async with http.get(url) as r:
                assert r.status == 200

    run(go())


def test_malformed_frames() -> None:
    async def go() -> None:
        async with running_sim(rate=20.0) as sim:
            ws = await websockets.connect(sim.ws_url, additional_headers=ws_headers(), max_size=None)
            sim.faults.inject("malformed")
            raw = [await asyncio.wait_for(ws.recv(), 2) for _ in range(4)]
            with pytest.raises(ValueError):
                json.loads(raw[0])
            wrong = json.loads(raw[1])
            assert wrong["type"] == "orderbook_delta" and isinstance(wrong["seq"], str)
            assert json.loads(raw[2])["type"] == "kxfeed_sim_unknown"
            assert len(raw[3]) > 2_000_000
            await ws.close()

    run(go())


def test_faults_from_the_config_spec() -> None:
    async def go() -> None:
        async with running_sim(rate=500.0, faults="duplicate:0.2,disconnect:0.4s") as sim:
            c, sid = await _book_client(sim)
            with pytest.raises(websockets.ConnectionClosed):
                for _ in range(100_000):
                    await c.next(timeout=2)
            seqs = [f["seq"] for f in c.frames if f.get("sid") == sid]
            assert any(b == a for a, b in itertools.pairwise(seqs))

    run(go())
