"""The live stream on the running system (``kxfeed up``, the simulator over a real WebSocket,
the gateway worker): a subscriber gets the current books first and then sees a top of book
change; a once-a-second subscription is coalesced; garbage on one connection is answered and
does not disturb another; the gateway's /metrics counts it all."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType

from tests.e2e.harness import System
from tests.support.config import reported_port

pytestmark = pytest.mark.slow

WAIT_S = 120.0


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    s = System(tmp_path_factory.mktemp("gwstream"), sim={"rate": 60.0, "markets": 12})
    try:
        s.start()
        yield s
    finally:
        s.stop()
        s.kill()


async def next_json(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    while True:
        msg = await ws.receive(timeout=WAIT_S)
        assert msg.type == WSMsgType.TEXT, (msg.type, msg.data)
        out: dict[str, Any] = msg.json()
        if out["type"] != "heartbeat":
            return out


def metric(text: str, name: str, labels: str = "") -> float:
    pattern = "^" + re.escape(name) + (r"\{" + re.escape(labels) + r"\}" if labels else "") + r" (\S+)"
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_stream_on_the_running_system(system: System) -> None:
    url = f"http://127.0.0.1:{reported_port(system.cfg, 'gateway', 'http')}/api/v1/stream"

    async def main() -> None:
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(url)
            snapshots = 0
            for attempt in range(int(WAIT_S)):  # until the books are there to snapshot
                await ws.send_json({"op": "subscribe", "id": attempt, "topics": ["tob."]})
                subscribed = await next_json(ws)
                assert subscribed["type"] == "subscribed", subscribed
                snapshots = subscribed["snapshots"]
                if snapshots:
                    break
                await ws.send_json({"op": "unsubscribe", "id": attempt})
                assert (await next_json(ws))["type"] == "unsubscribed"
                await asyncio.sleep(1.0)
            assert snapshots, system.log_tail()
            first: dict[str, dict[str, Any]] = {}
            for _ in range(snapshots):
                snap = await next_json(ws)
                assert snap["type"] == "snapshot" and snap["kind"] == "tob"
                first[snap["data"]["ticker"]] = snap["data"]
            # Then live frames; one of them changes a top of book the snapshot showed.
            while True:
                frame = await next_json(ws)
                assert frame["type"] == "tob", frame
                before = first.get(frame["ticker"])
                data = frame["data"]
                if before is not None and (data["yes_bid"], data["yes_ask"]) != (
                    before["yes_bid"],
                    before["yes_ask"],
                ):
                    break
            for key in ("yes_bid", "yes_ask", "spread"):
                assert data[key] is None or re.fullmatch(r"\d+\.\d{4}", data[key]), data
            assert re.fullmatch(r"\d+\.\d{2}", data["yes_bid_size_fp"])

            ticks = await http.ws_connect(url)
            await ticks.send_json({"op": "subscribe", "id": 1, "topics": ["tob."], "interval_ms": 1000})
            assert (await next_json(ticks))["type"] == "subscribed"
            bad = await http.ws_connect(url)
            await bad.send_str("\x00garbage{{{")
            await bad.send_json({"op": "subscribe", "id": 1, "topics": ["tob."], "interval_ms": -1})
            assert [(await next_json(bad))["error"] for _ in range(2)] == ["bad_json", "bad_request"]
            live = 0
            while live < 20:  # the first subscriber keeps its stream
                frame = await next_json(ws)
                live += frame["type"] == "tob"
            coalesced = 0
            while coalesced < 3:
                frame = await next_json(ticks)
                coalesced += frame["type"] == "tob"
            for c in (ws, ticks, bad):
                await c.close()

    asyncio.run(asyncio.wait_for(main(), 600))
    text = system.scrape(system.metrics_port("gateway"))
    assert metric(text, "kxfeed_gateway_stream_sent_total", 'type="tob"') >= 23
    assert metric(text, "kxfeed_gateway_stream_snapshots_total") >= 1
    assert metric(text, "kxfeed_gateway_stream_client_errors_total", 'error="bad_json"') == 1
    assert metric(text, "kxfeed_gateway_stream_coalesced_total", 'kind="tob"') >= 1
    assert metric(text, "kxfeed_gateway_live_markets") >= 1
