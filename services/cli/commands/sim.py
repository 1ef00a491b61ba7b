"""Run the local Kalshi exchange simulator, or control a running one.

  kxfeed sim [--seed N] [--markets M] [--rate R|blast] [--faults SPEC] [--port P]
  kxfeed sim ACTION [ARG ...]      (talks to the running simulator's control socket)

Running serves Kalshi's WebSocket (/trade-api/ws/v2), REST (/trade-api/v2) and
The Odds API (/v4/sports/{sport}/odds) on one port, signed with the dev key the
simulator creates in data_dir (key id "kxfeed-sim-dev"); it runs only with
[kalshi] env = "sim" and free ports (exit 2 otherwise). --rate is book-changing
steps per second; "blast" (or 0) sends as fast as the clients read.

Fault SPEC: comma-separated KIND:P (probability per frame/request),
KIND:EVERYs (every EVERY seconds) or KIND:EVERYs:DURs. Kinds: gap, duplicate,
disconnect, stall, no_ping, error25, auth401, rate429, rest5xx, malformed.

Actions: inject KIND [key=value ...] | pause | resume | step [N] |
pregenerate STEPS (blast mode, paused: resume sends them at full speed, then pauses) | info |
book TICKER | dump [PATH] | planted | connections

examples:
  kxfeed sim --seed 7 --markets 60 --rate 20
  kxfeed sim --rate blast --faults 'gap:0.001,disconnect:30s,stall:60s:5s'
  kxfeed sim inject gap sid=1 count=2
  kxfeed sim inject rate429 seconds=10
  kxfeed sim book KXNBAGAME-26NOV03LALBOS-LAL
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import msgspec

from services.cli.common import add_config_options, choice, load, subcommand
from shared.commands import served_by
from shared.commands.base import decode
from shared.control import ControlError, request

ACTIONS = (
    "run",
    "inject",
    "pause",
    "resume",
    "step",
    "pregenerate",
    "info",
    "book",
    "dump",
    "planted",
    "connections",
)


def register(sub: Any) -> None:
    p = subcommand(sub, "sim", __doc__)
    p.add_argument(
        "action",
        nargs="?",
        default="run",
        type=choice("action", ACTIONS),
        help="run (default) or a control action",
    )
    p.add_argument("rest", nargs="*", metavar="ARG", help="action arguments")
    p.add_argument(
        "--seed",
        type=int,
        help="random seed (same seed: same markets and frames; trade ids are new at every start "
        "unless [sim] run_id is set)",
    )
    p.add_argument("--markets", type=int, help="markets listed at start")
    p.add_argument("--rate", help="activity steps per second, or 'blast'")
    p.add_argument("--faults", help="fault spec, e.g. 'gap:0.01,disconnect:30s'")
    p.add_argument("--host", help="address to bind (default from [sim])")
    p.add_argument("--port", type=int, help="port to bind (0: any free port)")
    add_config_options(p)
    p.set_defaults(func=run)


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _params(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"expected key=value, got {item!r}")
        out[key] = _value(value)
    return out


def run(args: argparse.Namespace) -> int:
    cfg = load(args)
    if args.action == "run":
        overrides: dict[str, Any] = {}
        for name in ("seed", "markets", "faults", "host", "port"):
            if getattr(args, name) is not None:
                overrides[name] = getattr(args, name)
        if args.rate is not None:
            try:
                overrides["rate"] = 0.0 if args.rate == "blast" else float(args.rate)
            except ValueError:
                print(f"kxfeed sim: --rate must be a number or 'blast', not {args.rate!r}", file=sys.stderr)
                return 2
        cfg = msgspec.structs.replace(cfg, sim=msgspec.structs.replace(cfg.sim, **overrides))
        from services import registry
        from shared.preflight import preflight

        sim = registry.worker_class("sim")
        problems = preflight(cfg, ["sim"], offline=True) + sim.check_config(cfg)
        for problem in problems:
            print(f"kxfeed sim: {problem}", file=sys.stderr)
        if problems:
            return 2
        return sim(cfg).run()
    try:
        cmd, params = _control_args(args.action, args.rest)
        # Generating ahead takes ~30 us a step: a million steps is half a minute.
        timeout = 10.0 + params.get("steps", 0) / 10_000 if cmd == "pregenerate" else 10.0
        command = decode(served_by("sim")[cmd], params)  # checked here as the simulator checks it
        result = request(cfg.sim.control, command, timeout_s=timeout)
    except ValueError as exc:
        print(f"kxfeed sim {args.action}: {exc}", file=sys.stderr)
        return 2
    except ControlError as exc:
        print(f"kxfeed sim {args.action}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=1))
    return 0


def _control_args(action: str, rest: list[str]) -> tuple[str, dict[str, Any]]:
    if action == "inject":
        if not rest:
            raise ValueError("inject needs a fault kind, e.g. 'kxfeed sim inject gap sid=1'")
        return "inject", {"kind": rest[0], **_params(rest[1:])}
    if action == "step":
        return "step", {"n": int(rest[0]) if rest else 1}
    if action == "pregenerate":
        if len(rest) != 1 or not rest[0].isdigit():
            raise ValueError("pregenerate needs a step count, e.g. 'kxfeed sim pregenerate 100000'")
        return "pregenerate", {"steps": int(rest[0])}
    if action == "book":
        if len(rest) != 1:
            raise ValueError("book needs one market ticker")
        return "book", {"ticker": rest[0]}
    if action == "dump":
        return "dump", {"path": rest[0]} if rest else {}
    return action, {}
