"""Frames per second the exchange simulator serves in blast mode to one raw websocket client.

  python bench/sim.py [--seconds S] [--markets M] [--pregen STEPS]

The simulator runs in its own process (blast mode, ``rate = 0``) with STEPS of
activity pre-generated; one ``websockets`` client in this process signs,
subscribes to orderbook_delta + ticker + trade for every market and counts the
frames it receives (no JSON decoding: the socket path is what is measured).
This is the ceiling the kxfeed pipeline is measured against.

Reference, same run: the same client reading pre-encoded frames of the same
size from a bare asyncio server that does nothing but write them (the client's
own ceiling). The simulator should reach a large share of it; it also reports
how fast the engine generates activity with nobody listening.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import multiprocessing as mp
import time
from multiprocessing.connection import Connection

import websockets
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from services.exchange_sim.activity import Engine
from services.exchange_sim.connection import encode_text_frames
from services.exchange_sim.server import ExchangeSim
from shared.config import SimConfig
from shared.kalshi.auth import SIM_DEV_KEY_ID, private_pem
from tests.support.sim_client import client_key, ws_headers


def _serve_sim(markets: int, pregen: int, pem: bytes, pipe: Connection) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(pem, None)
    assert isinstance(key, RSAPrivateKey)

    async def main() -> None:
        cfg = SimConfig(port=0, markets=markets, rate=0.0, lifecycle_every=0, truth_max_frames=0)
        sim = ExchangeSim(cfg, keys={SIM_DEV_KEY_ID: key.public_key()})
        sim.hub.pregenerate(pregen)
        await sim.start()
        pipe.send((sim.ws_url, sim.tickers))
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, pipe.recv)  # the client starts counting
        cpu, wall = time.process_time(), time.perf_counter()
        await loop.run_in_executor(None, pipe.recv)  # the client stopped
        pipe.send((sim.hub.steps, (time.process_time() - cpu) / (time.perf_counter() - wall)))
        await sim.stop()

    import uvloop

    uvloop.run(main())


def _serve_raw(frame_size: int, pipe: Connection) -> None:
    payload = (
        b'{"type":"orderbook_delta","sid":1,"seq":1,"msg":{"pad":"' + b"x" * max(0, frame_size - 60) + b'"}}'
    )
    chunk = encode_text_frames([payload] * 2000)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        key = next(
            line.split(b":", 1)[1].strip()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: %s\r\n\r\n" % _accept(key)
        )
        try:
            while True:
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        pipe.send(port)
        await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
        server.close()

    import uvloop

    uvloop.run(main())


def _accept(key: bytes) -> bytes:
    """RFC 6455 handshake answer for a client's Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())


async def _count(
    url: str,
    seconds: float,
    subscribe: list[str] | None,
    headers: dict[str, str],
    pipe: Connection | None = None,
) -> tuple[int, int, float]:
    """(frames/s, average frame size, client CPU share) over ``seconds`` of reading."""
    frames = 0
    size = 0
    ws = await websockets.connect(
        url, additional_headers=headers, max_size=None, compression=None, close_timeout=0.1
    )
    if subscribe is not None:
        channels = ["orderbook_delta", "ticker", "trade"]
        cmd = {"id": 1, "cmd": "subscribe", "params": {"channels": channels, "market_tickers": subscribe}}
        await ws.send(json.dumps(cmd))
        await ws.recv(decode=False)  # first reply: the sim has started sending
    if pipe is not None:
        pipe.send("start")
    cpu, start = time.process_time(), time.perf_counter()
    end = start + seconds
    while time.perf_counter() < end:
        msg = await ws.recv(decode=False)
        frames += 1
        size += len(msg)
    elapsed = time.perf_counter() - start
    cpu = (time.process_time() - cpu) / elapsed
    if pipe is not None:
        pipe.send("stop")
    ws.transport.abort()  # don't wait for a close handshake behind megabytes of queued frames
    return int(frames / elapsed), size // max(1, frames), cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--markets", type=int, default=60)
    ap.add_argument("--pregen", type=int, default=250_000)
    args = ap.parse_args()

    t0 = time.perf_counter()
    eng = Engine(7, args.markets, lifecycle_every=0)
    eng.initial_emissions(0)
    n = 20_000
    emissions = len(eng.run(n, 0))
    gen_rate = n / (time.perf_counter() - t0)

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve_sim, args=(args.markets, args.pregen, private_pem(client_key()), child))
    proc.start()
    url, tickers = parent.recv()
    sim_rate, frame_size, client_cpu = asyncio.run(_count(url, args.seconds, tickers, ws_headers(), parent))
    steps, sim_cpu = parent.recv()
    proc.join(10)

    parent2, child2 = ctx.Pipe()
    raw = ctx.Process(target=_serve_raw, args=(frame_size, child2))
    raw.start()
    port = parent2.recv()
    raw_rate, _, raw_cpu = asyncio.run(_count(f"ws://127.0.0.1:{port}/", args.seconds, None, {}))
    parent2.send("stop")
    raw.join(10)

    print(f"engine (no clients):        {gen_rate:>10,.0f} steps/s ({emissions / n:.2f} frames/step)")
    print(
        f"sim blast -> 1 ws client:   {sim_rate:>10,.0f} frames/s (avg {frame_size} B/frame, "
        f"{steps:,} steps made; CPU sim {sim_cpu:.0%}, client {client_cpu:.0%})"
    )
    print(
        f"reference, bare server:     {raw_rate:>10,.0f} frames/s (same client, same frame size, no sim; "
        f"CPU client {raw_cpu:.0%})"
    )
    print(f"sim / reference:            {sim_rate / raw_rate:>10.0%}")


if __name__ == "__main__":
    main()
