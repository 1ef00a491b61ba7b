"""The live stream for real: a StreamHub fed by a bus Subscriber from a real Publisher through a
bus proxy, served by a real aiohttp server on port 0, read by real WebSocket clients (aiohttp's,
and a raw socket that stops reading). Assertions are on frames and counters, never on timing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import uvloop
from aiohttp import WSMsgType, web
from prometheus_client import CollectorRegistry

from services.gateway import stream_ws
from services.gateway.stream_ws import STREAM_PATH, StreamHub
from shared.bus import Publisher, Subscriber
from shared.config import GatewayConfig
from tests.support.busproxy import proxied
from tests.support.gateway_stream import RawClient, tob, trade

WAIT_S = 60.0  # a deadline for a loaded CI box, never an assertion


@dataclass
class Rig:
    hub: StreamHub
    pub: Publisher
    port: int
    registry: CollectorRegistry

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{STREAM_PATH}"


async def _pump(sub: Subscriber, hub: StreamHub) -> None:
    while True:
        hub.feed_many(await sub.recv())


@contextlib.asynccontextmanager
async def rig(tmp: Path, clock: Callable[[], int] | None = None, **stream: Any) -> AsyncIterator[Rig]:
    cfg = GatewayConfig(stream_heartbeat_s=3600.0, **stream)
    registry = CollectorRegistry()
    with proxied(tmp, hwm=1_000_000) as (ctx, xsub, xpub):
        hub = StreamHub(cfg, registry) if clock is None else StreamHub(cfg, registry, clock_ns=clock)
        sub = Subscriber(ctx, xpub, hub.topics(), join_settle_s=0)
        pub = Publisher(ctx, xsub, "test")
        app = web.Application()
        app.router.add_get(STREAM_PATH, hub.handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = int(runner.addresses[0][1])
        tasks = [asyncio.create_task(_pump(sub, hub)), asyncio.create_task(hub.run())]
        try:
            assert await pub.wait_for_subscriber("tob.X", timeout=WAIT_S)
            yield Rig(hub, pub, port, registry)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await hub.close()
            await runner.cleanup()
            sub.close()
            pub.close()


async def until(pred: Callable[[], bool], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while not pred():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"never: {what}")
        await asyncio.sleep(0.01)


async def next_json(
    ws: aiohttp.ClientWebSocketResponse, skip: tuple[str, ...] = ("heartbeat",)
) -> dict[str, Any]:
    while True:
        msg = await ws.receive(timeout=WAIT_S)
        assert msg.type == WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
        out: dict[str, Any] = msg.json()
        if out["type"] not in skip:
            return out


async def frame_where(
    ws: aiohttp.ClientWebSocketResponse, pred: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    while True:
        got = await next_json(ws)
        if pred(got):
            return got


def run(coro: Awaitable[None]) -> None:
    # On uvloop, the workers' loop (its transports are not asyncio's classes).
    uvloop.run(asyncio.wait_for(coro, 300))


def test_subscribe_gets_a_snapshot_first_then_live_frames(tmp_path: Path) -> None:
    async def main() -> None:
        async with rig(tmp_path) as r, aiohttp.ClientSession() as http:
            r.pub.publish(tob("KX-A", 4300, ts_ns=1))
            r.pub.publish(trade("KX-A", "t1"))
            await until(lambda: r.hub.live.get("trade", "KX-A") is not None, "the bus reached the hub")
            ws = await http.ws_connect(r.url)
            await ws.send_json({"op": "subscribe", "id": 7, "topics": ["tob.", "trade."]})
            subscribed = await next_json(ws)
            assert (
                subscribed["type"] == "subscribed" and subscribed["id"] == 7 and subscribed["snapshots"] == 2
            )
            snaps = [await next_json(ws), await next_json(ws)]
            assert {(s["type"], s["topic"]) for s in snaps} == {
                ("snapshot", "tob.KX-A"),
                ("snapshot", "trade.KX-A"),
            }
            tob_snap = next(s for s in snaps if s["kind"] == "tob")
            assert tob_snap["data"]["yes_bid"] == "0.4300" and tob_snap["data"]["yes_ask"] == "0.4400"
            r.pub.publish(tob("KX-A", 4500))
            live = await next_json(ws)
            assert live["type"] == "tob" and live["id"] == 7 and live["ticker"] == "KX-A"
            assert live["data"]["yes_bid"] == "0.4500" and live["data"]["ts_recv_ns"].isdigit()
            await ws.close()
            await until(lambda: not r.hub.core.clients, "the hub saw the client go")
            assert r.hub.core.counts.of("disconnects", "client_closed") == 1
            assert r.registry.get_sample_value("kxfeed_gateway_stream_sent_total", {"type": "tob"}) == 1
            assert r.registry.get_sample_value("kxfeed_gateway_stream_snapshots_total") == 2
            assert r.registry.get_sample_value("kxfeed_gateway_live_markets") == 1

    run(main())


def test_interval_coalesces_to_the_newest_state_per_market(tmp_path: Path) -> None:
    now = [1_800_000_000_000_000_000]

    async def main() -> None:
        async with rig(tmp_path, clock=lambda: now[0]) as r, aiohttp.ClientSession() as http:
            ws = await http.ws_connect(r.url)
            await ws.send_json({"op": "subscribe", "id": 1, "topics": ["tob."], "interval_ms": 1000})
            assert (await next_json(ws))["type"] == "subscribed"
            for i in range(50):
                r.pub.publish(tob("KX-A", 4000 + i))
            r.pub.publish(tob("KX-B", 100))
            await until(
                lambda: r.hub.core.counts.of("coalesced", "tob") == 49, "every update reached the hub"
            )
            (client,) = r.hub.core.clients.values()
            assert len(client.outbox.data) == 0 and len(client.subs[1].pending) == 2  # held, not sent
            now[0] += 1_000_000_000  # the interval passes
            first, second = await next_json(ws), await next_json(ws)
            assert [(f["ticker"], f["data"]["yes_bid"]) for f in (first, second)] == [
                ("KX-A", "0.4049"),
                ("KX-B", "0.0100"),
            ]
            await ws.send_json({"op": "ping", "id": 2})
            assert (await next_json(ws))["type"] == "pong"  # nothing else was sent in between
            await ws.close()

    run(main())


def _check_bounds(hub: StreamHub, messages: int, size: int) -> int:
    for client in list(hub.core.clients.values()):
        assert len(client.outbox.data) <= messages and client.outbox.bytes <= size
    return hub.core.queued()[1]


async def _flood_until(r: Rig, done: Callable[[], bool], messages: int, size: int) -> int:
    """Publish top-of-book updates of KX-A until ``done``; the queue bound is checked as it goes."""
    most = 0
    for round_ in range(2000):
        for i in range(200):
            r.pub.publish(tob("KX-A", 1000 + (round_ * 200 + i) % 8000, pad=round_))
        await asyncio.sleep(0.005)
        most = max(most, _check_bounds(r.hub, messages, size))
        if done():
            return most
    raise AssertionError("the flood never filled the slow client's queue")


def test_a_client_that_stops_reading_gets_a_lost_notice_and_memory_stays_bounded(tmp_path: Path) -> None:
    messages, size = 64, 16_384

    async def main() -> None:
        cfg: dict[str, Any] = {"stream_queue_messages": messages, "stream_queue_bytes": size}
        async with rig(tmp_path, **cfg) as r, aiohttp.ClientSession() as http:
            raw = await asyncio.to_thread(RawClient, r.port)
            raw.send_json({"op": "subscribe", "id": 1, "topics": ["tob."]})
            assert (await asyncio.to_thread(raw.recv_json))["type"] == "subscribed"
            good = await http.ws_connect(r.url)
            await good.send_json({"op": "subscribe", "id": 2, "topics": ["tob."], "tickers": ["KX-B"]})
            assert (await next_json(good))["type"] == "subscribed"
            # raw reads no more: its socket buffers fill, then its queue, then the oldest go.
            most = await _flood_until(r, lambda: r.hub.core.counts.of("dropped", "tob") > 0, messages, size)
            assert most <= 2 * (size + 64 * 1024)  # two clients' queues and their control queues at most
            r.pub.publish(tob("KX-B", 4242))  # the other client is served all along
            got = await frame_where(good, lambda f: f["type"] == "tob")
            assert got["ticker"] == "KX-B" and got["data"]["yes_bid"] == "0.4242"
            r.pub.publish(tob("KX-A", 9999))
            await until(lambda: r.hub.core.counts.of("sent", "tob") > 0, "sent")

            def read_until_marker() -> list[dict[str, Any]]:
                seen = []
                while True:
                    f = raw.recv_json()
                    seen.append(f)
                    if f["type"] == "tob" and f["data"]["yes_bid"] == "0.9999":
                        return seen

            seen = await asyncio.to_thread(read_until_marker)
            lost = [f for f in seen if f["type"] == "lost"]
            assert lost and sum(f["dropped"] for f in lost) == r.hub.core.counts.of("dropped", "tob")
            assert all(set(f["kinds"]) == {"tob"} and f["since"].endswith("Z") for f in lost)
            assert seen.index(lost[-1]) < len(seen) - 1  # the notice comes before what was left
            assert r.hub.core.counts.of("lost_notices") == len(lost)
            assert r.registry.get_sample_value("kxfeed_gateway_stream_dropped_total", {"kind": "tob"}) == sum(
                f["dropped"] for f in lost
            )
            assert r.hub.core.counts.total("disconnects") == 0
            raw.close()
            await good.close()

    run(main())


def test_the_disconnect_policy_disconnects_the_slow_client_only(tmp_path: Path) -> None:
    messages, size = 64, 16_384

    async def main() -> None:
        cfg: dict[str, Any] = {"stream_queue_messages": messages, "stream_queue_bytes": size}
        async with rig(tmp_path, stream_policy="disconnect", **cfg) as r, aiohttp.ClientSession() as http:
            raw = await asyncio.to_thread(RawClient, r.port)
            raw.send_json({"op": "subscribe", "id": 1, "topics": ["tob."]})
            assert (await asyncio.to_thread(raw.recv_json))["type"] == "subscribed"
            good = await http.ws_connect(r.url)
            await good.send_json({"op": "subscribe", "id": 2, "topics": ["tob."], "tickers": ["KX-B"]})
            assert (await next_json(good))["type"] == "subscribed"
            await _flood_until(
                r, lambda: r.hub.core.counts.of("disconnects", "slow_consumer") == 1, messages, size
            )
            await until(lambda: len(r.hub.core.clients) == 1, "the slow client is gone")

            def read_to_the_end() -> list[str]:
                types = []
                try:
                    while True:
                        types.append(raw.recv_json()["type"])
                except (ConnectionError, OSError) as exc:
                    types.append(f"closed: {exc}")
                return types

            types = await asyncio.to_thread(read_to_the_end)
            assert types[-1].startswith("closed") and "lost" not in types
            r.pub.publish(tob("KX-B", 4242))
            got = await frame_where(good, lambda f: f["type"] == "tob")
            assert got["data"]["yes_bid"] == "0.4242"
            assert (
                r.registry.get_sample_value(
                    "kxfeed_gateway_stream_disconnects_total", {"reason": "slow_consumer"}
                )
                == 1
            )
            raw.close()
            await good.close()

    run(main())


def test_garbage_from_one_client_does_not_stop_the_stream_for_others(tmp_path: Path) -> None:
    async def main() -> None:
        async with rig(tmp_path, stream_max_frame_bytes=1024) as r, aiohttp.ClientSession() as http:
            good = await http.ws_connect(r.url)
            await good.send_json({"op": "subscribe", "id": 1, "topics": ["tob."]})
            assert (await next_json(good))["type"] == "subscribed"
            bad = await http.ws_connect(r.url)
            hostile: list[tuple[str, bytes | str]] = [
                ("bytes", b"\xff" + os.urandom(599)),  # never valid JSON from its first byte
                ("str", "{not json"),
                ("str", '{"op": "launch_missiles"}'),
                ("str", '{"op": "subscribe", "id": 1, "topics": ["tob."], "interval_ms": 99999999}'),
                ("str", '{"op": "subscribe", "id": 1, "topics": ["orders."]}'),
                ("str", '{"op": "unsubscribe", "id": 123}'),
                ("str", "x" * 2000),
            ]
            for how, data in hostile:
                if how == "bytes":
                    await bad.send_bytes(data if isinstance(data, bytes) else data.encode())
                else:
                    await bad.send_str(data if isinstance(data, str) else data.decode())
            errors = [await next_json(bad) for _ in hostile]
            assert [e["error"] for e in errors] == [
                "bad_json",
                "bad_json",
                "unknown_op",
                "bad_request",
                "bad_topic",
                "unknown_subscription",
                "too_large",
            ]
            assert all(e["type"] == "error" and len(e["detail"]) <= 200 for e in errors)
            assert "interval_ms" in errors[3]["detail"]
            r.pub.publish(tob("KX-A", 4100))
            assert (await frame_where(good, lambda f: f["type"] == "tob"))["data"]["yes_bid"] == "0.4100"
            await bad.send_str("y" * 9000)  # past what is read at all: closed with 1009
            msg = await bad.receive(timeout=WAIT_S)
            assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
            assert bad.close_code == 1009
            await until(lambda: r.hub.core.counts.of("disconnects", "too_large") == 1, "counted")
            r.pub.publish(tob("KX-A", 4200))
            assert (await frame_where(good, lambda f: f["type"] == "tob"))["data"]["yes_bid"] == "0.4200"
            errs = r.registry.get_sample_value(
                "kxfeed_gateway_stream_client_errors_total", {"error": "bad_json"}
            )
            assert errs == 2
            await good.close()

    run(main())


def test_too_many_clients_refused_and_stop_closes_with_1001(tmp_path: Path) -> None:
    async def main() -> None:
        async with rig(tmp_path, stream_max_clients=2) as r, aiohttp.ClientSession() as http:
            a = await http.ws_connect(r.url)
            b = await http.ws_connect(r.url)
            await until(lambda: len(r.hub.core.clients) == 2, "both connected")
            c = await http.ws_connect(r.url)
            msg = await c.receive(timeout=WAIT_S)
            assert msg.type == WSMsgType.CLOSE and msg.data == 1013
            assert r.hub.core.counts.of("refused", "max_clients") == 1
            await a.send_json({"op": "ping"})
            assert (await next_json(a))["type"] == "pong"
            await r.hub.close()
            for ws in (a, b):
                msg = await ws.receive(timeout=WAIT_S)
                assert msg.type == WSMsgType.CLOSE and msg.data == 1001
            await until(lambda: not r.hub.core.clients, "gone")
            assert r.hub.core.counts.of("disconnects", "stopped") == 2

    run(main())


def test_heartbeats_reach_a_quiet_client() -> None:
    async def main() -> None:
        cfg = GatewayConfig(stream_heartbeat_s=0.2)
        hub = StreamHub(cfg, CollectorRegistry())
        app = web.Application()
        app.router.add_get(STREAM_PATH, hub.handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        task = asyncio.create_task(hub.run())
        try:
            async with aiohttp.ClientSession() as http:
                ws = await http.ws_connect(f"http://127.0.0.1:{runner.addresses[0][1]}{STREAM_PATH}")
                beat = await next_json(ws, skip=())
                assert beat["type"] == "heartbeat" and beat["ts"].endswith("Z") and beat["ts_ns"].isdigit()
                await ws.close()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await hub.close()
            await runner.cleanup()

    run(main())


def test_a_burst_past_the_hub_backlog_is_told_to_clients(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream_ws, "BACKLOG_MAX", 10)

    async def main() -> None:
        async with rig(tmp_path) as r, aiohttp.ClientSession() as http:
            ws = await http.ws_connect(r.url)
            await ws.send_json({"op": "subscribe", "id": 1, "topics": ["tob."]})
            assert (await next_json(ws))["type"] == "subscribed"
            r.hub.feed_many([tob("KX-A", 1000 + i) for i in range(100)])  # one burst, before any fan-out
            lost = await next_json(ws)
            assert lost["type"] == "lost" and lost["dropped"] == 90 and lost["kinds"] == {"tob": 90}
            frames = [await next_json(ws) for _ in range(10)]
            assert [f["data"]["yes_bid"] for f in frames] == [f"0.{1090 + i:04d}" for i in range(10)]
            live = r.hub.live.get("tob", "KX-A")
            assert live is not None and live.data["yes_bid"] == "0.1099"  # live state has every message
            assert r.hub.core.counts.of("backlog_dropped", "tob") == 90
            await ws.close()

    run(main())


async def next_lines(ws: aiohttp.ClientWebSocketResponse) -> list[dict[str, Any]]:
    """The messages of the next ndjson text frame (heartbeats skipped)."""
    while True:
        msg = await ws.receive(timeout=WAIT_S)
        assert msg.type == WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
        got = [json.loads(line) for line in msg.data.split("\n")]
        got = [g for g in got if g["type"] != "heartbeat"]
        if got:
            return got


def test_ndjson_frames_carry_several_messages_one_per_line(tmp_path: Path) -> None:
    async def main() -> None:
        async with rig(tmp_path) as r, aiohttp.ClientSession() as http:
            ws = await http.ws_connect(r.url + "?format=ndjson")
            plain = await http.ws_connect(r.url)
            for client in (ws, plain):
                await client.send_json({"op": "subscribe", "id": 1, "topics": ["tob.KX-B", "trade."]})
            assert (await next_lines(ws))[0]["type"] == "subscribed"
            assert (await next_json(plain))["type"] == "subscribed"
            # One publish of many messages: the hub takes them in few batches, so frames hold several.
            r.pub.publish_many(
                [tob("KX-A", 4300 + i) for i in range(50)] + [tob("KX-B", 4300 + i) for i in range(50)]
            )
            r.pub.publish(trade("KX-A", "t-last"))
            got: list[dict[str, Any]] = []
            frames = 0
            while not got or got[-1]["type"] != "trade":
                got += await next_lines(ws)
                frames += 1
            assert [g["data"]["yes_bid"] for g in got[:-1]] == [f"0.{4300 + i}" for i in range(50)]
            assert {g["ticker"] for g in got[:-1]} == {"KX-B"} and got[-1]["data"]["trade_id"] == "t-last"
            assert frames < len(got)  # several messages shared a frame
            same = [await next_json(plain) for _ in range(51)]
            assert same == got  # the same messages, one per frame
            await ws.close()
            await plain.close()
            await until(lambda: not r.hub.core.clients, "the hub saw the clients go")
            assert r.hub.core.counts.of("sent", "tob") == 100

    run(main())


def test_an_unknown_format_or_parameter_is_a_400(tmp_path: Path) -> None:
    async def main() -> None:
        async with rig(tmp_path) as r, aiohttp.ClientSession() as http:
            for query in ("?format=xml", "?format=json&format=ndjson", "?token=x"):
                with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                    await http.ws_connect(r.url + query)
                assert err.value.status == 400, query
            assert not r.hub.core.clients

    run(main())
