"""Show the supervised workers: pid, state, uptime, restarts, heartbeat age, messages/s.

  kxfeed status [--config FILE] [--json] [--events N]

Asks the running supervisor (`kxfeed up`) over its control socket. MSG/S comes
from the workers' heartbeat counters; LAST EXIT is negative when a signal
killed the worker. Exits 1 when no supervisor answers.

examples:
  kxfeed status
  kxfeed status --json | jq '.workers[] | select(.state != "running")'
"""

from __future__ import annotations

import argparse
from typing import Any

from services.cli.common import add_config_options, load, show_answer, subcommand
from services.cli.screen import event_line, headline, table
from shared.commands.status import Status


def register(sub: Any) -> None:
    p = subcommand(sub, "status", __doc__)
    add_config_options(p)
    p.add_argument("--json", action="store_true", help="print the raw status as JSON")
    p.add_argument(
        "--events", type=int, default=5, metavar="N", help="show the last N supervisor events (default 5)"
    )
    p.add_argument(
        "--timeout", type=float, default=3.0, metavar="S", help="seconds to wait for the supervisor"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = load(args)
    return show_answer(
        args,
        "kxfeed status: no supervisor",
        cfg.supervisor.control,
        Status(),
        lambda s: _show(s, args.events),
    )


def _show(status: dict[str, Any], events: int) -> None:
    print(headline(status))
    print()
    for line in table(status):
        print(line)
    recent = status.get("events", [])[-events:] if events > 0 else []
    if recent:
        print("\nrecent:")
        for e in recent:
            print("  " + event_line(e))
