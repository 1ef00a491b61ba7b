"""Preflight: find in about a second what would stop kxfeed from starting.

  kxfeed check [--offline] [--worker NAME ...] [--config FILE]

Checks, for the workers `kxfeed up` would run (or only --worker NAME): the config
and environment overrides; credentials for Kalshi demo/prod; the private key file
(readable by this user, mode 0600 or 0640 with a group only kxfeed is in); that the
database is reachable (PostgreSQL: a TCP connect to its host and port); that every
port the workers and the supervisor bind is free; ODDS_API_KEY when the arb polls
The Odds API against real Kalshi; the packaged team tables and migrations; the
[curve] key files of every bus or control endpoint beyond loopback. Each
problem is one line that says what to do; exit 2 when there is any, 0 (and "ok")
otherwise. --offline skips the network checks (the database connect). `kxfeed up`
and `kxfeed worker` run the same checks first; `kxfeed config check` too.

examples:
  kxfeed check
  kxfeed check --config /etc/kxfeed/kxfeed.toml --worker connector
  KXFEED_KALSHI_ENV=demo kxfeed check --offline
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from services import registry
from services.cli.common import (
    add_config_options,
    choice,
    load,
    planned_workers,
    preflight_failed,
    subcommand,
)


def register(sub: Any) -> None:
    p = subcommand(sub, "check", __doc__)
    p.add_argument("--offline", action="store_true", help="skip the network checks (database connect)")
    p.add_argument(
        "--worker",
        action="append",
        type=choice("worker", registry.WORKER_MODULES),
        metavar="NAME",
        help="check only what this worker needs (repeatable; default: what `kxfeed up` runs)",
    )
    add_config_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = load(args)
    workers = list(args.worker) if args.worker else planned_workers(cfg)
    if preflight_failed("kxfeed check", cfg, workers, supervisor=not args.worker, offline=args.offline):
        return 2
    scope = "" if args.offline else " (network included)"
    print(f"ok: {', '.join(workers)} can start{scope}", file=sys.stdout)
    return 0
