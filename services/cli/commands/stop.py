"""Stop the supervisor and every worker, or one worker.

  kxfeed stop [NAME] [--config FILE] [--wait S]

Without NAME: the supervisor stops the workers in reverse start order
(producers first, consumers drain, the writer commits, the bus last) and exits;
this command waits up to S seconds for that. With NAME: that worker stops and
stays down until `kxfeed restart NAME`; an unknown NAME is answered with the
supervised workers' names (exit 2).

examples:
  kxfeed stop
  kxfeed stop connector
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from services.cli.commands.restart import supervised
from services.cli.common import add_config_options, load, subcommand, unknown
from shared.commands.ping import Ping
from shared.commands.stop import Stop
from shared.commands.stop_child import StopChild
from shared.control import ControlError, request


def register(sub: Any) -> None:
    p = subcommand(sub, "stop", __doc__)
    p.add_argument("name", nargs="?", help="stop only this worker (default: everything)")
    p.add_argument(
        "--wait", type=float, default=120.0, metavar="S", help="seconds to wait for the supervisor to exit"
    )
    add_config_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = load(args)
    endpoint = cfg.supervisor.control
    try:
        if args.name:
            names = supervised(endpoint)
            if args.name not in names:
                print(f"kxfeed stop: {unknown('worker', args.name, names)}", file=sys.stderr)
                return 2
            print(request(endpoint, StopChild(name=args.name)))
            return 0
        request(endpoint, Stop())
    except ControlError as exc:
        print(f"kxfeed stop: no supervisor answers on {endpoint}: {exc}", file=sys.stderr)
        return 1
    print(f"stopping: waiting up to {args.wait:g}s for the supervisor to stop every worker", file=sys.stderr)
    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline:
        try:
            request(endpoint, Ping(), timeout_s=0.5)
        except ControlError:
            print("stopped")
            return 0
        time.sleep(0.2)
    print(f"kxfeed stop: the supervisor still answers after {args.wait}s", file=sys.stderr)
    return 1
