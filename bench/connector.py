"""Connector throughput: frames/s decoded, checked, journaled and published, against the
simulator in blast mode, next to a bare websockets client reading the same stream.

  .venv/bin/python bench/connector.py [--seconds 5] [--markets 60] [--fsync never|segment|batch]

Runs the bus and the simulator as separate processes (``kxfeed worker bus|sim``),
then, one after the other:

1. the limit: a bare ``websockets`` client in this process subscribes to the same
   channels and only counts frames;
2. the connector: ``kxfeed worker connector`` with its journal on; its frame count is
   read over the control socket, and a raw ZeroMQ subscriber in this process counts
   what reaches the bus (so publishing is not free: a subscriber is attached).

Prints both rates and their ratio (target: the connector >= 50% of the bare client), and
the connector's core on the recorded frames (no socket: target >= 150,000 frames/s) beside
msgspec alone decoding the same frames (the machine's speed at that moment), best of 3 each, turn about.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import websockets
import zmq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared.commands.info import Info  # noqa: E402
from shared.commands.pause import Pause  # noqa: E402
from shared.commands.resume import Resume  # noqa: E402
from shared.commands.stats import Stats  # noqa: E402
from shared.config import Config  # noqa: E402
from shared.control import ControlError, request  # noqa: E402
from shared.journal import read  # noqa: E402
from shared.kalshi.auth import SIM_DEV_KEY_ID, auth_headers, ensure_dev_keypair, load_private_key  # noqa: E402
from tests.support.config import make_config, write_config  # noqa: E402
from tests.support.procs import stop_all  # noqa: E402

WS_PATH = "/trade-api/ws/v2"
#: Replays of the recorded frames through the core (each on a fresh session and journal).
REPLAYS = 3


def spawn(name: str, cfg_path: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "services.cli.main", "worker", name, "--config", str(cfg_path)],
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def wait_ready(endpoint: str, what: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            stats: dict[str, Any] = request(endpoint, Stats(), timeout_s=1.0)
            if stats.get("ready"):
                return stats
        except ControlError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{what} did not become ready within {timeout}s")


async def bare_client(
    cfg: Config, ws_url: str, tickers: list[str], seconds: float, keep: list[bytes]
) -> tuple[float, int]:
    """Frames/s a client that only reads (no decode) gets from the same subscriptions.

    The first frames (replies, snapshots, then the stream) are kept in ``keep`` for the replay."""
    key = load_private_key(ensure_dev_keypair(cfg.data_dir)[0])
    headers = auth_headers(SIM_DEV_KEY_ID, key, "GET", WS_PATH, int(time.time() * 1000))
    async with websockets.connect(
        ws_url,
        additional_headers=headers,
        ping_interval=None,
        max_size=None,
        compression=None,
        max_queue=8192,
    ) as ws:
        await ws.send(
            json.dumps(
                {
                    "id": 1,
                    "cmd": "subscribe",
                    "params": {"channels": ["orderbook_delta", "ticker", "trade"], "market_tickers": tickers},
                }
            )
        )
        await ws.send(
            json.dumps({"id": 2, "cmd": "subscribe", "params": {"channels": ["market_lifecycle_v2"]}})
        )
        warm = time.monotonic() + 1.0
        while time.monotonic() < warm:
            keep.append(await ws.recv(decode=False))
        n = 0
        t0 = time.monotonic()
        end = t0 + seconds
        while True:
            raw = await ws.recv(decode=False)
            if len(keep) < 300_000:
                keep.append(raw)
            n += 1
            if n & 1023 == 0 and time.monotonic() >= end:
                break
        took = time.monotonic() - t0
    return n / took, n


def replay(
    cfg: Config, frames: list[bytes], ctx: zmq.Context[zmq.Socket[bytes]], tickers: list[str], run: int = 0
) -> float:
    """Frames/s of the connector's own work on recorded frames (no socket): decode, seq check,
    convert, group, journal, publish - exactly the worker's per-batch path."""
    from services.connector.batching import by_market
    from services.connector.metrics import CoreExport
    from services.connector.session import Session
    from services.connector.validity import Recovery
    from shared.bus import Publisher
    from shared.journal import JournalWriter

    journal = JournalWriter(Path(cfg.journal.dir) / f"replay-{run}", fsync=cfg.journal.fsync)
    pub = Publisher(ctx, cfg.bus.xsub, f"bench-replay-{run}", journal=journal)
    pub.wait_for_subscriber_sync("delta.", 5.0)
    recovery = Recovery()
    s = Session(1, recovery=recovery, max_markets=cfg.connector.max_markets_per_subscription)
    export = CoreExport()
    s.start(tickers, 0.0)  # same command ids as the bare client: ids 1 (market channels) and 2 (lifecycle)
    s.table.take_commands()
    batch = cfg.connector.max_batch
    t0 = time.perf_counter()
    for i in range(0, len(frames), batch):
        s.frames(frames[i : i + batch], time.time_ns(), time.monotonic())
        pub.publish_many(by_market(s.take()))
        export(s, recovery)  # the worker's _flush exports the session's counts and ages
    took = time.perf_counter() - t0
    pub.close(0)
    journal.close()
    if s.stats()["valid_books"] != len(tickers):
        raise SystemExit(f"replay went wrong: {s.stats()}")
    return len(frames) / took


def bare_decode(frames: list[bytes]) -> float:
    """Frames/s of msgspec alone decoding the same frames into the same typed Structs: the
    machine's speed at this moment, for reading the core's absolute rate."""
    from shared.kalshi.ws import FRAME_DECODER

    decode = FRAME_DECODER.decode
    t0 = time.perf_counter()
    for raw in frames:
        decode(raw)
    return len(frames) / (time.perf_counter() - t0)


class BusCounter(threading.Thread):
    """Counts bus frames and messages-bytes arriving at a raw SUB socket (no decoding)."""

    def __init__(self, ctx: zmq.Context[zmq.Socket[bytes]], xpub: str) -> None:
        super().__init__(daemon=True)
        self.sock = ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.RCVHWM, 2_000_000)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.sock.connect(xpub)
        self.frames = 0
        self.stop = False

    def run(self) -> None:
        sock = self.sock
        while not self.stop:
            if sock.poll(100):
                while True:
                    try:
                        sock.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self.frames += 1
        sock.close(0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--markets", type=int, default=60)
    ap.add_argument("--fsync", choices=["never", "segment", "batch"], default="segment")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="kxfeed-bench-connector-"))
    cfg = make_config(
        tmp,
        sim={"rate": 0.0, "markets": args.markets, "lifecycle_every": 1_000_000_000},
        journal={"dir": str(tmp / "journal"), "fsync": args.fsync},
        log={"level": "WARNING"},
    )
    cfg_path = write_config(cfg, tmp / "bench.toml")
    ensure_dev_keypair(cfg.data_dir)
    log = tmp / "workers.log"
    procs = [spawn("bus", cfg_path, log), spawn("sim", cfg_path, log)]
    try:
        wait_ready(cfg.busproxy.control, "bus")
        wait_ready(cfg.sim.control, "sim")
        info = request(cfg.sim.control, Info())  # the simulator bound port 0: its URLs say which
        ws_url = info["ws_url"]
        rest = f"{info['rest_url']}/markets?status=open&limit=1000"
        import urllib.request

        with urllib.request.urlopen(rest) as resp:
            tickers = sorted(m["ticker"] for m in json.load(resp)["markets"])

        recorded: list[bytes] = []
        bare_rate, bare_n = asyncio.run(bare_client(cfg, ws_url, tickers, args.seconds, recorded))

        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        counter = BusCounter(ctx, cfg.bus.xpub)
        counter.start()
        time.sleep(0.3)
        request(cfg.sim.control, Pause())
        # The core and its reference taken turn about, best of each: on a shared machine a
        # moment's load would otherwise be read as the code's speed.
        core_runs, decode_runs = [], []
        for run in range(REPLAYS):
            decode_runs.append(bare_decode(recorded))
            core_runs.append(replay(cfg, recorded, ctx, tickers, run))
        core_rate, decode_rate = max(core_runs), max(decode_runs)
        request(cfg.sim.control, Resume())
        conn = spawn("connector", cfg_path, log)
        procs.append(conn)
        wait_ready(cfg.connector.control, "connector")
        time.sleep(1.0)  # warm up: initial snapshots, caches
        s0 = request(cfg.connector.control, Stats())
        b0 = counter.frames
        t0 = time.monotonic()
        time.sleep(args.seconds)
        s1 = request(cfg.connector.control, Stats())
        b1 = counter.frames
        took = time.monotonic() - t0
        frames = s1["frames"] - s0["frames"]
        rate = frames / took
        conn.send_signal(signal.SIGTERM)
        conn.wait(15)
        counter.stop = True
        counter.join(2)
        ctx.destroy(linger=0)
        records = sum(1 for _ in read(Path(cfg.journal.dir) / "connector"))
        journal_bytes = sum(p.stat().st_size for p in (Path(cfg.journal.dir) / "connector").glob("*.seg"))
    finally:
        stop_all(procs, 10)

    cpus = os.cpu_count()
    print(f"markets: {len(tickers)}  window: {args.seconds:.1f}s  journal fsync: {args.fsync}  cpus: {cpus}")
    print(f"bare websockets client (the limit):   {bare_rate:>10,.0f} frames/s  ({bare_n:,} frames)")
    print(f"connector (decode, check, journal, publish): {rate:>10,.0f} frames/s  ({frames:,} frames)")
    print(
        f"  bus frames seen by a subscriber: {(b1 - b0) / took:,.0f}/s (a market's run of messages per frame)"
    )
    print(f"  journal: {records:,} records, {journal_bytes / 1e6:,.1f} MB")
    print(f"connector core, {len(recorded):,} recorded frames, no socket: {core_rate:>10,.0f} frames/s")
    print(
        f"  same run, msgspec alone decoding the same frames: {decode_rate:,.0f} frames/s"
        f" (the core = {core_rate / decode_rate:.1%} of it; best of {REPLAYS} each, taken turn about;"
        f" core runs {', '.join(f'{r:,.0f}' for r in core_runs)})"
    )
    core_verdict = "meets" if core_rate >= 150_000 else "BELOW"
    print(f"connector core {core_rate:,.0f} frames/s: {core_verdict} the target of >= 150,000 frames/s")
    ratio = rate / bare_rate if bare_rate else 0.0
    verdict = "meets" if ratio >= 0.5 else "BELOW"
    print(f"connector / bare = {ratio:.0%}: {verdict} the target of >= 50% of the bare client")
    print("reference: the issue expects a bare client at ~200,000 frames/s on an idle machine;")
    print("  when the bare client is far below that, the simulator (not the connector) is the limit here.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
