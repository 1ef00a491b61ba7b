"""Run one worker in the foreground (for debugging, honcho and systemd).

  kxfeed worker NAME [--config FILE] [--instance ID]

The worker connects to the bus named in the config, serves /metrics on its
port and answers its control socket (ping, stats, stop). SIGTERM or Ctrl-C
drains and exits 0; a crash exits 1 (its traceback in the log). First it runs
the offline part of `kxfeed check` for itself (credentials, key file, ports,
packaged data): a problem there, or any other configuration error, is one line
and exit 78 (EX_CONFIG), which neither `kxfeed up` nor the systemd units restart.

examples:
  kxfeed worker writer
  kxfeed worker orderbook --config config/default.toml --log-json
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from services import registry
from services.cli.common import add_config_options, choice, load, preflight_failed, subcommand
from shared.actor import write_exit_note
from shared.config import EX_CONFIG, ConfigError
from shared.log import get_logger


def register(sub: Any) -> None:
    p = subcommand(sub, "worker", __doc__)
    p.add_argument(
        "name",
        type=choice("worker", registry.WORKER_MODULES),
        metavar="NAME",
        help=f"which worker: {', '.join(registry.WORKER_MODULES)}",
    )
    p.add_argument("--instance", default="", help="instance id when running several (e.g. shard 0)")
    add_config_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        cfg = load(args)
        cls = registry.worker_class(args.name)
        # Offline: a restart during a database outage must reach the writer's own retry loop.
        problems = preflight_failed(f"kxfeed worker {args.name}", cfg, [args.name], offline=True)
        if problems:
            # The exit of a config error (EX_CONFIG, with its note): neither the supervisor nor
            # systemd (RestartPreventExitStatus=78) restarts a worker in a loop over it.
            write_exit_note(f"{args.name}: {problems[0]}", get_logger(args.name))
            return EX_CONFIG
        worker = cls(cfg, instance=args.instance)
    except KeyError as exc:
        print(f"kxfeed worker: {exc.args[0]}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        # Before the worker runs; the same exit a ConfigError in its setup gives, so a
        # supervisor stops with this message instead of restarting the worker in a loop.
        message = " ".join(str(exc).split())
        print(f"kxfeed worker {args.name}: config error: {message}", file=sys.stderr)
        write_exit_note(f"{args.name}: {message}", get_logger(args.name))
        return EX_CONFIG
    return worker.run()
