"""Replay a recorded session on Kalshi's WebSocket protocol (and REST), for any Kalshi client.

  kxfeed replay [--since TIME] [--until TIME] [--tickers T1,T2] [--speed 1|10|max]
                [--journal DIR] [--port P] [--start-after S] [--exit-when-done]

Reads what the connector journaled (default: this config's [journal] dir; --journal
data/prod/journal replays a production recording) and serves it where the simulator
would: ws://HOST:PORT/trade-api/ws/v2 and http://HOST:PORT/trade-api/v2, signed with the
simulator's dev key ([kalshi] env = "sim"). A client subscribes as to Kalshi
(orderbook_delta, trade, ticker): it gets each book as it stood at --since, then the
window's deltas, trades and tickers at the recorded pace times --speed ("max": as fast as it
reads), with contiguous per-subscription seqs. REST lists the recorded markets, so kxfeed's
own connector (same config, [sim] port = 0) finds and follows the replay like the simulator.

The clock starts when every replayed market has a book subscription, or --start-after
seconds after the first subscription. TIME is ISO 8601 (2026-12-03T14:00:00Z; no offset
= UTC) or Unix milliseconds, and means when kxfeed received the data; the default window
is everything recorded. With [sim] port = 0 the bound port is printed and reported in the
data dir like the simulator's. Ctrl-C stops it. Exit 2: bad input (times, markets, a
window without data), the port is taken, or a simulator or replay already serves this data dir.

examples:
  kxfeed replay --since 2026-12-03T14:00:00Z --until 2026-12-03T15:00:00Z --speed 10
  kxfeed replay --tickers KXNBAGAME-26NOV03LALBOS-LAL --speed max --port 0
  kxfeed replay --journal data/prod/journal --speed 1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import signal
import socket
import sys
from typing import Any

import msgspec

from services.cli.common import add_config_options, load, subcommand

SPEEDS = "1, 10, any number above 0, or max"


def register(sub: Any) -> None:
    p = subcommand(sub, "replay", __doc__)
    p.add_argument("--since", metavar="TIME", help="window start (inclusive); default: the recording's start")
    p.add_argument("--until", metavar="TIME", help="window end (exclusive); default: the recording's end")
    p.add_argument(
        "--tickers",
        action="append",
        metavar="T1,T2",
        help="only these markets (comma-separated, may repeat); default: every recorded market",
    )
    p.add_argument("--speed", default="1", help=f"recorded pace times this: {SPEEDS} (default 1)")
    p.add_argument("--journal", metavar="DIR", help="the recording's journal dir (default: [journal] dir)")
    p.add_argument("--host", help="address to bind (default: [sim] host)")
    p.add_argument("--port", type=int, help="port to bind (default: [sim] port; 0: any free port)")
    p.add_argument(
        "--start-after",
        type=float,
        default=2.0,
        metavar="S",
        help="start this long after the first subscription even if some market is not subscribed (default 2)",
    )
    p.add_argument(
        "--exit-when-done",
        action="store_true",
        help="exit once the window is out and every client has read it",
    )
    add_config_options(p)
    p.set_defaults(func=run)


def _serving_already(cfg: Any) -> list[str]:
    """With [sim] port = 0 the replay reports its port where the simulator does: refuse to
    take the report from a simulator (or replay) still serving this data dir."""
    from shared import ports

    if cfg.sim.port != 0:
        return []  # a fixed port: the preflight's port check covers it
    port = ports.reported(cfg.data_dir, "sim", "http")
    if port is None:
        return []
    host = "127.0.0.1" if cfg.sim.host in ("0.0.0.0", "") else cfg.sim.host
    try:
        socket.create_connection((host, port), timeout=1.0).close()
    except OSError:
        return []  # a stale report: nothing serves there any more
    return [
        f"a simulator or replay already serves {cfg.data_dir} on port {port}: stop it, or give this "
        "replay a data dir of its own (--config)"
    ]


def parse_speed(text: str) -> float | None:
    """None for max."""
    if text.strip().lower() == "max":
        return None
    try:
        speed = float(text)
    except ValueError:
        raise ValueError(f"--speed must be {SPEEDS}, not {text!r}") from None
    if not 0 < speed <= 1_000_000:
        raise ValueError(f"--speed must be {SPEEDS} (at most 1000000), not {text!r}")
    return speed


def _sim_module(name: str) -> Any:
    """A module of the simulator, loaded by name as ``services.registry`` loads workers: the CLI
    starts the simulator's replay server in this process, it does not build on the simulator's code."""
    return importlib.import_module(f"services.exchange_sim.{name}")


def run(args: argparse.Namespace) -> int:
    cfg = load(args)
    from shared.preflight import preflight

    record = _sim_module("replay_record")
    ReplayError, ReplayWindow, parse_time = record.ReplayError, record.ReplayWindow, record.parse_time
    load_recording = record.load

    def fail(text: str) -> int:
        print(f"kxfeed replay: {text}", file=sys.stderr)
        return 2

    overrides: dict[str, Any] = {
        k: getattr(args, k) for k in ("host", "port") if getattr(args, k) is not None
    }
    if "port" in overrides and not 0 <= overrides["port"] <= 65_535:
        return fail(f"--port must be 0..65535, not {overrides['port']}")
    if not 0 <= args.start_after <= 3600:
        return fail(f"--start-after must be 0..3600 seconds, not {args.start_after}")
    cfg = msgspec.structs.replace(cfg, sim=msgspec.structs.replace(cfg.sim, **overrides))
    problems = preflight(cfg, ["sim"], offline=True) + _serving_already(cfg)
    if problems:
        for problem in problems:
            print(f"kxfeed replay: {problem}", file=sys.stderr)
        return 2
    try:
        speed = parse_speed(args.speed)
        since = parse_time(args.since, "--since") if args.since else 0
        until = parse_time(args.until, "--until") if args.until else 4_102_444_800 * 10**9 - 1
        tickers = [t.strip() for item in args.tickers or [] for t in item.split(",") if t.strip()]
        window = ReplayWindow(since, until) if (args.since or args.until) else None
        rec = load_recording(args.journal or cfg.journal.dir, window, tickers or None)
    except (ReplayError, ValueError) as exc:
        return fail(str(exc))
    except KeyboardInterrupt:  # Ctrl-C while a long recording is read
        print("kxfeed replay: interrupted while reading the recording", file=sys.stderr)
        return 130
    try:
        return asyncio.run(_serve(cfg, rec, speed, args.start_after, args.exit_when_done))
    except ReplayError as exc:
        return fail(str(exc))
    except OSError as exc:
        return fail(f"cannot listen on {cfg.sim.host}:{cfg.sim.port}: {exc.strerror or exc}")


async def _serve(cfg: Any, rec: Any, speed: float | None, start_after: float, exit_when_done: bool) -> int:
    from shared import ports

    trusted_keys = _sim_module("keyring").trusted_keys
    ReplayServer = _sim_module("replay").ReplayServer
    format_ns = _sim_module("replay_record").format_ns

    keys = trusted_keys(cfg.data_dir, list(cfg.sim.public_keys))
    server = ReplayServer(cfg.sim, rec, speed=speed, keys=keys, start_after_s=start_after)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    reported = cfg.sim.port == 0
    if reported:  # clients configured for the simulator's port 0 read this one
        ports.report(cfg.data_dir, "sim", "http", server.port)
    since, until = rec.window
    print(
        f"replaying {sum(rec.counts.values())} messages of {len(rec.markets)} markets, "
        f"{format_ns(since or rec.first_ns)} .. {format_ns(min(until, rec.last_ns))}, speed "
        f"{'max' if speed is None else f'{speed:g}'}\n"
        f"ws {server.ws_url}\nrest {server.rest_url}\nport {server.port}",
        flush=True,
    )
    try:
        waits: list[asyncio.Task[Any]] = [asyncio.create_task(stop.wait())]
        if exit_when_done:
            waits.append(asyncio.create_task(_done(server)))
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for w in waits:
            w.cancel()
        failure = server.sim.tasks.failure
    finally:
        if reported:
            ports.withdraw(cfg.data_dir, "sim", "http")
        with contextlib.suppress(Exception):
            await server.stop()
    print(f"replay stopped: {server.source.sent} messages replayed", flush=True)
    return 1 if failure is not None else 0


async def _done(server: Any) -> None:
    await server.finished.wait()
    await server.sim.drained(timeout=3600.0)
