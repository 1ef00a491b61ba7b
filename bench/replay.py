"""Messages per second ``kxfeed replay --speed max`` serves to one Kalshi WebSocket client.

  python bench/replay.py [--messages N] [--markets M]

A synthetic recording (what a connector journals: market metadata, a snapshot per market,
then deltas, trades and tickers) is written to a temporary journal; the replay server runs in
its own process (as ``kxfeed replay`` does: port 0, the bound port read back, max speed) and
one ``websockets`` client in this process signs, subscribes to orderbook_delta + ticker +
trade for every market and reads every frame of the window (no JSON decoding: the server
and the socket are what is measured). The figure is the window's messages over the time
from the first to the last frame, printed next to the target (issue 19: >= 100,000 msgs/s)
and, measured in the same run, the reader's own ceiling (bench/sim.py's bare server writing
pre-encoded frames of the same size).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import websockets
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests' recording helpers

from shared.kalshi.auth import SIM_DEV_KEY_ID, private_pem
from tests.support.recording import write_recording
from tests.support.sim_client import client_key, ws_headers

TARGET = 100_000


def _serve(journal: str, pem: bytes, pipe: Connection) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from services.exchange_sim.replay import ReplayServer
    from services.exchange_sim.replay_record import load
    from shared.config import SimConfig

    key = load_pem_private_key(pem, None)
    assert isinstance(key, RSAPrivateKey)

    async def main() -> None:
        t0 = time.perf_counter()
        rec = load(journal)
        load_s = time.perf_counter() - t0
        server = ReplayServer(
            SimConfig(port=0), rec, speed=None, keys={SIM_DEV_KEY_ID: key.public_key()}, start_after_s=0
        )
        await server.start()
        pipe.send((server.ws_url, rec.markets, sum(rec.counts.values()) - rec.counts["snap"], load_s))
        await server.finished.wait()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, pipe.recv)  # the client has read everything
        await server.stop()

    import uvloop

    uvloop.run(main())


async def _read_raw(url: str, tickers: list[str], frames: int) -> tuple[float, int]:
    """As :func:`_read`, with a bare RFC 6455 reader: frame headers are parsed and payloads
    skipped, so the figure is the server's and not a client library's."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port, limit=1 << 22)
    key = base64.b64encode(os.urandom(16)).decode()
    head = [
        f"GET {parts.path} HTTP/1.1",
        f"Host: {parts.netloc}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    head += [f"{k}: {v}" for k, v in ws_headers().items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
    status = await reader.readuntil(b"\r\n\r\n")
    if not status.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"handshake refused: {status[:200]!r}")
    channels = ["orderbook_delta", "ticker", "trade"]
    cmd = json.dumps(
        {"id": 1, "cmd": "subscribe", "params": {"channels": channels, "market_tickers": tickers}}
    )
    writer.write(_client_frame(cmd.encode()))
    skip = len(channels) + len(tickers)  # the replies and one snapshot a market come first
    want = skip + frames
    seen = 0
    size = 0
    buf = b""
    start = 0.0
    while seen < want:
        chunk = await reader.read(1 << 20)
        if not chunk:
            raise RuntimeError(f"server closed after {seen} of {want} frames")
        buf += chunk
        pos, n = 0, len(buf)
        while pos + 2 <= n:
            length = buf[pos + 1] & 0x7F
            hdr = 2
            if length == 126:
                if pos + 4 > n:
                    break
                length, hdr = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if pos + 10 > n:
                    break
                length, hdr = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            end = pos + hdr + length
            if end > n:
                break
            if buf[pos] & 0x0F == 0x1:  # a text frame (pings are not counted)
                seen += 1
                if seen == skip + 1:
                    start = time.perf_counter()
                if seen > skip:
                    size += length
            pos = end
        buf = buf[pos:]
    elapsed = time.perf_counter() - start
    writer.transport.abort()
    return elapsed, size


def _client_frame(payload: bytes) -> bytes:
    mask = os.urandom(4)
    n = len(payload)
    head = bytes((0x81, 0x80 | n)) if n < 126 else bytes((0x81, 0x80 | 126)) + n.to_bytes(2, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def _read(url: str, tickers: list[str], frames: int) -> tuple[float, int]:
    """(seconds from the first data frame to the last, bytes read)."""
    ws = await websockets.connect(
        url, additional_headers=ws_headers(), max_size=None, compression=None, close_timeout=0.1
    )
    channels = ["orderbook_delta", "ticker", "trade"]
    await ws.send(
        json.dumps({"id": 1, "cmd": "subscribe", "params": {"channels": channels, "market_tickers": tickers}})
    )
    # The replies and the snapshots (one a market) come first; the window's frames follow.
    for _ in range(len(channels) + len(tickers)):
        await ws.recv(decode=False)
    size = 0
    first = await ws.recv(decode=False)
    start = time.perf_counter()
    size += len(first)
    for _ in range(frames - 1):
        size += len(await ws.recv(decode=False))
    elapsed = time.perf_counter() - start
    ws.transport.abort()
    return elapsed, size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=500_000, help="recorded messages in the window")
    ap.add_argument("--markets", type=int, default=50)
    args = ap.parse_args()
    if args.messages < 1000 or not 1 <= args.markets <= 10_000:
        ap.error("--messages must be at least 1000 and --markets 1..10000")

    with tempfile.TemporaryDirectory(prefix="kxfeed-bench-replay-") as tmp:
        t0 = time.perf_counter()
        write_recording(Path(tmp) / "journal", markets=args.markets, messages=args.messages, batch=256)
        write_s = time.perf_counter() - t0
        journal = str(Path(tmp) / "journal")
        raw_s, raw_size, frames, load_s = _run(journal, _read_raw)
        lib_s, _, _, _ = _run(journal, _read)
        bare = _bare(raw_size // frames, frames)

    rate = frames / raw_s
    print(
        f"recording: {args.messages:,} messages, {args.markets} markets (written in {write_s:.1f} s, "
        f"loaded in {load_s:.1f} s)"
    )
    print(
        f"replay max -> 1 ws client:  {rate:>10,.0f} msgs/s (bare RFC 6455 reader; avg "
        f"{raw_size // frames} B/frame, {frames:,} frames in {raw_s:.2f} s)"
    )
    print(f"  same, websockets client:  {frames / lib_s:>10,.0f} msgs/s (a websockets client, same replay)")
    print(
        f"reference, bare server:     {bare:>10,.0f} frames/s (same reader, same frame size, nothing "
        f"behind it: the reader's own ceiling now; replay reached {rate / bare:.0%} of it)"
    )
    print(f"target:                     {TARGET:>10,} msgs/s")
    print(
        f"replay / target:            {rate / TARGET:>10.2f}x  {'OK' if rate >= TARGET else 'BELOW TARGET'}"
    )


def _bare(frame_size: int, frames: int) -> float:
    """The raw reader against bench/sim.py's bare server (pre-encoded frames, nothing else)."""
    sim_bench = importlib.import_module("sim")  # bench/sim.py: bench/ is on sys.path as a script
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=sim_bench._serve_raw, args=(frame_size, child))
    proc.start()
    try:
        port = parent.recv()
        elapsed, _ = asyncio.run(_read_raw(f"ws://127.0.0.1:{port}/", [], frames))
        parent.send("stop")
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.kill()
    return frames / elapsed


Reader = Callable[[str, list[str], int], Coroutine[Any, Any, tuple[float, int]]]


def _run(journal: str, read: Reader) -> tuple[float, int, int, float]:
    """One replay server process, one client reading the whole window: (s, bytes, frames, load s)."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve, args=(journal, private_pem(client_key()), child))
    proc.start()
    try:
        url, tickers, frames, load_s = parent.recv()
        elapsed, size = asyncio.run(read(url, tickers, frames))
        parent.send("done")
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.kill()
    return elapsed, size, frames, load_s


if __name__ == "__main__":
    main()
