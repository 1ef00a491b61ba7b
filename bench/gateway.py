"""The gateway under load: the live stream to many WebSocket clients, and the live book route.

  .venv/bin/python bench/gateway.py [--rate 10000] [--clients 100] [--procs 4] [--seconds 10]
                                    [--format ndjson|json] [--requests 2000] [--concurrency 200]

One ``kxfeed up`` (every worker, the simulator at ``--rate`` messages/s over 60 markets, SQLite)
runs for the whole bench; every port is bound as 0 and read where the worker reports it.

1. Stream: ``--clients`` WebSocket clients (spread over ``--procs`` processes) subscribe to
   ``tob.`` at /api/v1/stream?format=``--format`` while a direct ZeroMQ subscriber to ``tob.``
   on the bus runs in this process. The window opens once every client is subscribed. Of the
   tob messages stamped (``ts_recv``) in the ``--seconds`` window, each seen within 3 s after
   it: messages per second per client against the direct subscriber's (the limit: what the bus
   carried), and receive -> seen latency (the time its bytes were read - its ``ts_recv``, one
   wall clock on one host) percentiles, the clients' against the direct subscriber's; the added
   p99 is their difference. The gateway's RSS and CPU are sampled throughout. A client is an
   asyncio Protocol on a raw socket (uvloop) that parses every WebSocket frame and matches
   every line of it: a lighter reader than aiohttp's, so 100 of them on 2 cores measure the
   gateway, not themselves.
2. Book: ``--requests`` GET /api/v1/markets/{ticker}/book, ``--concurrency`` at a time, against
   the same number of ``book`` requests to the orderbook's control socket, as many at a time
   (the limit: what the gateway asks for each request). p50/p99 of each and their ratio.

Targets (issue 18, 2 cores): added p99 <= 5 ms; >= 95 % of the direct subscriber's throughput
per client; book p99 <= 2 x the control socket's.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing as mp
import os
import random
import re
import shutil
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import zmq  # noqa: E402

from shared.bus import Subscriber  # noqa: E402
from shared.commands.book import Book  # noqa: E402
from shared.control import arequest  # noqa: E402
from tests.e2e.harness import System, sim_at  # noqa: E402
from tests.support.config import reported_port  # noqa: E402
from tests.support.procs import wait_until  # noqa: E402

MARKETS = 60
#: Latencies are counted in bins this wide (ns): every message of the window timed, none
#: kept one by one (a list of every one would be millions of floats a process).
BIN_NS = 10_000
#: How long after the window its messages are still waited for (a message counts by its
#: ts_recv: stamped in the window, seen whenever it arrives within this grace).
GRACE_NS = 3_000_000_000


class Hist:
    """Receive -> seen latencies of every message, in :data:`BIN_NS` bins up to the grace."""

    __slots__ = ("bins", "n")

    def __init__(self) -> None:
        self.bins = [0] * (GRACE_NS // BIN_NS + 1)
        self.n = 0

    def add(self, now_ns: int, stamps: Iterable[int], opens: int, closes: int) -> int:
        """Count the ``stamps`` (ts_recv) in [``opens``, ``closes``) as seen at ``now_ns``; how
        many were."""
        bins, top, n = self.bins, len(self.bins) - 1, 0
        for t in stamps:
            if opens <= t < closes:
                n += 1
                d = (now_ns - t) // BIN_NS
                # One clock on one host: below 0 only if it stepped back; clamped, still counted.
                bins[d if 0 <= d < top else (0 if d < 0 else top)] += 1
        self.n += n
        return n

    def merge(self, other: Hist) -> None:
        self.bins = [a + b for a, b in zip(self.bins, other.bins, strict=True)]
        self.n += other.n

    def pct(self, q: float) -> float:
        """The ``q`` quantile in ms (the upper edge of its bin)."""
        if not self.n:
            return float("nan")
        rank, seen = min(self.n - 1, int(q * self.n)), 0
        for i, k in enumerate(self.bins):
            seen += k
            if seen > rank:
                return (i + 1) * BIN_NS / 1e6
        return float("nan")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def cpu_s(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of ``pid`` so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Direct(threading.Thread):
    """The limit: a plain bus subscriber to ``tob.`` (ms from ts_recv to seen, in the window)."""

    def __init__(self, xpub: str) -> None:
        super().__init__(daemon=True)
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.sub = Subscriber(self.ctx, xpub, ["tob."])
        self.window = (0, 0)
        self.hist = Hist()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            msgs = self.sub.recv_blocking(0.2)
            now = time.time_ns()  # as a client: one time for everything one read gave
            self.hist.add(now, (m.ts_recv for m in msgs), *self.window)
        self.sub.close()
        self.ctx.destroy(0)


#: A tob line's stamp: the strict match, and the light one (a literal key: JSON escapes a quote
#: inside a string, so it is only ever a key), taken when the frame has as many tob lines as
#: stamps (a tob's data has one; a frame with anything else takes the strict match).
_TOB_TS = re.compile(rb'^\{"type":"tob",.*"ts_recv_ns":"(\d+)"', re.MULTILINE)
_TS = re.compile(rb'"ts_recv_ns":"(\d+)"')
_TOB_HEAD = b'{"type":"tob",'
_NEXT_TOB = b"\n" + _TOB_HEAD


class _Stamps:
    """The tob stamps (ts_recv_ns) of a text frame's payload. The clients of one process are
    sent the same frames: the last payload is kept, and one equal to it (compared in full, a
    memcmp) is not parsed again; each client still times every message at its own read."""

    __slots__ = ("last", "stamps")

    def __init__(self) -> None:
        self.last = b""
        self.stamps: list[int] = []

    def __call__(self, payload: bytes) -> list[int]:
        if payload == self.last:
            return self.stamps
        found = _TS.findall(payload)
        if len(found) != payload.count(_NEXT_TOB) + payload.startswith(_TOB_HEAD):
            found = _TOB_TS.findall(payload)
        self.last, self.stamps = payload, [int(t) for t in found]
        return self.stamps


_STAMPS = _Stamps()  # one a process: its clients' frames


def _mask(payload: bytes, opcode: int) -> bytes:
    """A client frame (RFC 6455 5.3: a client masks; a zero key leaves the payload as it is)."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + b"\0\0\0\0" + payload


class _Reader(asyncio.Protocol):
    """One stream client on a raw socket, read in ``data_received`` (no task switch per read):
    every WebSocket frame parsed, every line of a text frame matched (a ``tob`` message counted
    in the window, its ``ts_recv_ns`` against the time its bytes were read)."""

    def __init__(self, port: int, fmt: str, hist: Hist) -> None:
        self.port, self.fmt, self.hist = port, fmt, hist
        #: The window, set once every client of the bench is subscribed (until then: never).
        self.start_ns = self.end_ns = 1 << 62
        self.count = 0
        self.buf = b""
        self.upgraded = False
        loop = asyncio.get_running_loop()
        self.done: asyncio.Future[int] = loop.create_future()
        self.subscribed: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        key = base64.b64encode(os.urandom(16)).decode()
        self.transport.write(
            (
                f"GET /api/v1/stream?format={self.fmt} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def _finish(self, result: int | BaseException) -> None:
        if not self.done.done():
            if isinstance(result, BaseException):
                self.done.set_exception(result)
            else:
                self.done.set_result(result)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish(ConnectionError(f"the gateway closed the stream ({exc})"))

    def data_received(self, data: bytes) -> None:
        now = time.time_ns()
        if now >= self.end_ns + GRACE_NS:
            self._finish(self.count)
            return
        buf = self.buf + data if self.buf else data
        if not self.upgraded:
            head, sep, buf = buf.partition(b"\r\n\r\n")
            if not sep:
                self.buf = head
                return
            if not head.startswith(b"HTTP/1.1 101"):
                self._finish(ConnectionError(f"handshake refused: {head[:80]!r}"))
                return
            self.upgraded = True
            assert self.transport is not None
            self.transport.write(_mask(b'{"op":"subscribe","id":1,"topics":["tob."]}', 0x1))
        pos, end = 0, len(buf)
        while end - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            n, h = b1 & 0x7F, 2
            if n == 126:
                if end - pos < 4:
                    break
                n, h = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif n == 127:
                if end - pos < 10:
                    break
                n, h = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if end - pos < h + n:
                break
            payload = buf[pos + h : pos + h + n]
            pos += h + n
            opcode = b0 & 0x0F
            if opcode == 0x9 and self.transport is not None:
                self.transport.write(_mask(payload, 0xA))
            elif opcode == 0x8:
                self._finish(ConnectionError(f"closed by the gateway: {payload[:2].hex()} {payload[2:]!r}"))
                return
            elif opcode == 0x1 and not self.subscribed.done():
                if b'"type":"subscribed"' in payload:
                    self.subscribed.set_result(None)
            elif opcode == 0x1:
                self.count += self.hist.add(now, _STAMPS(payload), self.start_ns, self.end_ns)
        self.buf = buf[pos:]


async def _client(port: int, fmt: str, hist: Hist) -> _Reader:
    loop = asyncio.get_running_loop()
    _, reader = await loop.create_connection(lambda: _Reader(port, fmt, hist), "127.0.0.1", port)
    return reader


def _clients_proc(port: int, fmt: str, n: int, pipe: Any) -> None:
    """``n`` stream clients in one process: once all are subscribed it says so on ``pipe`` and
    is sent the window; then tob messages per client and latency samples in it."""
    import uvloop

    async def main() -> tuple[list[int], Hist, float]:
        hist = Hist()
        readers = [await _client(port, fmt, hist) for _ in range(n)]
        await asyncio.wait_for(asyncio.gather(*(r.subscribed for r in readers)), 120)
        pipe.send("subscribed")
        start_ns, end_ns = await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
        for r in readers:
            r.start_ns, r.end_ns = start_ns, end_ns
        cpu0 = time.process_time()
        # A client starved of CPU may see no frame after the window: it stops at the window's end anyway.
        limit_s = max(1.0, (end_ns + GRACE_NS - time.time_ns()) / 1e9 + 2.0)
        await asyncio.wait([r.done for r in readers], timeout=limit_s)
        for r in readers:
            if r.done.done() and r.done.exception() is not None:
                raise cast(BaseException, r.done.exception())  # a broken client is the bench's bug
        return [r.count for r in readers], hist, time.process_time() - cpu0

    pipe.send(uvloop.run(main()))


def _gateway_tob(system: System) -> tuple[float, float]:
    """The gateway's tob messages received from the bus and sent to stream clients so far."""
    body = system.scrape(system.metrics_port("gateway"))
    got = sent = 0.0
    for line in body.splitlines():
        if line.startswith('kxfeed_bus_received_total{kind="tob"}'):
            got = float(line.rsplit(" ", 1)[1])
        elif line.startswith('kxfeed_gateway_stream_sent_total{type="tob"}'):
            sent = float(line.rsplit(" ", 1)[1])
    return got, sent


def bench_stream(
    system: System, port: int, rate: float, clients: int, procs: int, seconds: float, fmt: str
) -> None:
    direct = Direct(system.cfg.bus.xpub)
    direct.start()
    gw_pid = int(system.workers()["gateway"]["pid"])
    base_rss = rss_mb(gw_pid)
    ctx = mp.get_context("spawn")
    pipes, workers = [], []
    for i in range(procs):
        share = clients // procs + (1 if i < clients % procs else 0)
        r, w = ctx.Pipe()
        p = ctx.Process(target=_clients_proc, args=(port, fmt, share, w), daemon=True)
        p.start()
        pipes.append(r)
        workers.append(p)
    # The window opens once every client is subscribed (a loaded box starts processes slowly).
    for r in pipes:
        if not r.poll(180) or r.recv() != "subscribed":
            raise SystemExit("a client process did not get its clients subscribed")
    start_ns = time.time_ns() + 1_000_000_000
    end_ns = start_ns + int(seconds * 1e9)
    direct.window = (start_ns, end_ns)
    for r in pipes:
        r.send((start_ns, end_ns))
    peak_rss = base_rss
    cpu = [(0.0, 0.0), (0.0, 0.0)]
    seen = [0.0, 0.0, 0.0, 0.0]  # the gateway's tob received from the bus, and sent, at start and end
    while time.time_ns() < end_ns + GRACE_NS + 1e9:
        peak_rss = max(peak_rss, rss_mb(gw_pid))
        now = time.time_ns()
        if not cpu[0][0] and now >= start_ns:
            cpu[0] = cpu_s(gw_pid)
            seen[0:2] = _gateway_tob(system)
        if not cpu[1][0] and now >= end_ns:
            cpu[1] = cpu_s(gw_pid)
            seen[2:4] = _gateway_tob(system)
        time.sleep(0.05)
    counts: list[int] = []
    hist = Hist()
    client_cpu: list[float] = []
    for r in pipes:
        if not r.poll(120):
            raise SystemExit("a client process sent no result")
        c, s, used = r.recv()
        counts += c
        hist.merge(s)
        client_cpu.append(used)
    stats = system.control("gateway", "stats")
    for p in workers:
        p.join(30)
    direct.stop.set()
    direct.join(5)
    limit = direct.hist.n / seconds
    per_client = [c / seconds for c in counts]
    d99, c99 = direct.hist.pct(0.99), hist.pct(0.99)
    print(
        f"stream: {clients} clients (format={fmt}) subscribed to tob. over {seconds:.0f} s,"
        f" the system at {rate:,.0f} msgs/s"
    )
    print(f"  direct ZeroMQ subscriber       {limit:>10,.0f} tob msgs/s      (the limit)")
    ratio_med = pct(per_client, 0.5) / limit if limit else float("nan")
    ratio_min = min(per_client) / limit if limit and per_client else float("nan")
    print(
        f"  per WebSocket client           {pct(per_client, 0.5):>10,.0f} msgs/s median,"
        f" {min(per_client):,.0f} min"
        f"  = {ratio_med:.1%} / {ratio_min:.1%} of the limit  (target >= 95%)"
    )
    print(f"  delivered, all clients         {sum(per_client):>10,.0f} tob msgs/s")
    print(
        f"  receive -> seen, direct        p50 {direct.hist.pct(0.5):>7.2f} ms  p99 {d99:>7.2f} ms"
        f"  (n={direct.hist.n:,})"
    )
    print(
        f"  receive -> seen, WebSocket     p50 {hist.pct(0.5):>7.2f} ms  p99 {c99:>7.2f} ms"
        f"  (n={hist.n:,})"
    )
    print(f"  added p99                      {c99 - d99:>10.2f} ms            (target <= 5 ms)")
    print(
        f"  gateway RSS                    {peak_rss:>10.1f} MB peak"
        f"        ({base_rss:.1f} MB before the clients)"
    )
    user_cpu, sys_cpu = ((cpu[1][i] - cpu[0][i]) / seconds for i in (0, 1))
    print(
        f"  gateway CPU                    {user_cpu + sys_cpu:>10.0%} of a core in the window"
        f" ({user_cpu:.0%} user, {sys_cpu:.0%} system)"
    )
    print(
        f"  client processes CPU           {sum(client_cpu) / seconds:>10.0%} of a core"
        f" ({procs} processes, lead and window)"
    )
    print(
        f"  gateway: tob from the bus      {(seen[2] - seen[0]) / seconds:>10,.0f} msgs/s,"
        f" sent to clients {(seen[3] - seen[1]) / seconds:,.0f} msgs/s"
    )
    print(
        f"  dropped for slow clients       {stats.get('stream_dropped', 0):>10,}"
        f"            (queued now: {stats.get('stream_queued_frames', 0):,} frames)"
    )


async def _timed_many(n: int, concurrency: int, ask: Any) -> list[float]:
    sem = asyncio.Semaphore(concurrency)
    times: list[float] = []

    async def one(i: int) -> None:
        async with sem:
            t0 = time.perf_counter()
            await ask(i)
            times.append((time.perf_counter() - t0) * 1000)

    await asyncio.gather(*(one(i) for i in range(n)))
    return times


def bench_book(system: System, port: int, requests: int, concurrency: int) -> None:
    import aiohttp

    endpoint = system.cfg.orderbook.control

    async def main() -> tuple[list[float], list[float]]:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:
            async with http.get(f"http://127.0.0.1:{port}/api/v1/markets", params={"limit": "1000"}) as resp:
                tickers = [m["ticker"] for m in (await resp.json())["markets"]]
            live = []
            for t in tickers:
                async with http.get(f"http://127.0.0.1:{port}/api/v1/markets/{t}/book") as resp:
                    if resp.status == 200:
                        live.append(t)
            assert live, "no live book to ask for"
            rng = random.Random(3)
            picks = [rng.choice(live) for _ in range(requests)]
            failures: list[int] = []

            async def via_gateway(i: int) -> None:
                async with http.get(f"http://127.0.0.1:{port}/api/v1/markets/{picks[i]}/book") as resp:
                    await resp.read()
                    if resp.status != 200:
                        failures.append(resp.status)

            async def via_control(i: int) -> None:
                await arequest(endpoint, Book(ticker=picks[i], depth=10), timeout_s=30)

            await _timed_many(min(200, requests), concurrency, via_control)  # warm both paths
            await _timed_many(min(200, requests), concurrency, via_gateway)
            control = await _timed_many(requests, concurrency, via_control)
            gateway = await _timed_many(requests, concurrency, via_gateway)
            assert not failures, f"non-200 answers: {failures[:5]}"
            return gateway, control

    gateway, control = asyncio.run(main())
    g99, c99 = pct(gateway, 0.99), pct(control, 0.99)
    print(f"book: {requests} requests, {concurrency} at a time")
    print(
        f"  control socket, direct         p50 {pct(control, 0.5):>7.2f} ms  p99 {c99:>7.2f} ms  (the limit)"
    )
    print(f"  GET /api/v1/markets/{{t}}/book  p50 {pct(gateway, 0.5):>7.2f} ms  p99 {g99:>7.2f} ms")
    print(f"  ratio of p99                   {g99 / c99:>10.2f} x           (target <= 2 x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=10_000.0, help="simulator messages/s")
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--procs", type=int, default=4, help="processes the clients are spread over")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--format", choices=("ndjson", "json"), default="ndjson", help="the stream's frames")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=200)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kxgw-bench-"))
    system = System(
        tmp,
        sim=sim_at(args.rate, MARKETS),
        gateway={"rate_per_s": 0.0, "stream_max_clients": max(256, args.clients + 8)},
    )
    try:
        system.start()
        port = reported_port(system.cfg, "gateway", "http")
        assert wait_until(lambda: bool(system.workers().get("gateway", {}).get("pid")), 60)
        time.sleep(3.0)  # books built, tob flowing
        bench_stream(system, port, args.rate, args.clients, args.procs, args.seconds, args.format)
        bench_book(system, port, args.requests, args.concurrency)
    finally:
        system.stop()
        system.kill()
        shutil.rmtree(tmp, ignore_errors=True)  # the run's database and journal: ~100 MB each


if __name__ == "__main__":
    main()
