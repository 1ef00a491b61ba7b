"""Restart one supervised worker now (no backoff; not counted against the intensity).

  kxfeed restart NAME [--config FILE]

The supervisor stops NAME (SIGTERM, SIGKILL after its shutdown timeout) and
starts it again; with strategy rest_for_one or one_for_all the workers that
depend on it restart with it. A worker stopped with `kxfeed stop NAME` starts
again.

An unknown NAME is answered with the supervised workers' names (and the closest one);
exit 2.

example:
  kxfeed restart connector
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from services.cli.common import add_config_options, load, subcommand, unknown
from shared.commands.restart import Restart
from shared.commands.status import Status
from shared.control import ControlError, request


def register(sub: Any) -> None:
    p = subcommand(sub, "restart", __doc__)
    p.add_argument("name", help="the worker to restart (see `kxfeed status`)")
    add_config_options(p)
    p.set_defaults(func=run)


def supervised(endpoint: str) -> list[str]:
    """The names of the workers the running supervisor knows (raises ControlError)."""
    status = request(endpoint, Status())
    return [str(w["worker"]) for w in status.get("workers", [])]


def run(args: argparse.Namespace) -> int:
    cfg = load(args)
    try:
        names = supervised(cfg.supervisor.control)
        if args.name not in names:
            print(f"kxfeed restart: {unknown('worker', args.name, names)}", file=sys.stderr)
            return 2
        print(request(cfg.supervisor.control, Restart(name=args.name)))
    except ControlError as exc:
        print(f"kxfeed restart: no supervisor answers on {cfg.supervisor.control}: {exc}", file=sys.stderr)
        return 1
    return 0
