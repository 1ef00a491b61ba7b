"""Run one worker in the foreground (for debugging, honcho and systemd).

  kxfeed worker NAME [--config FILE] [--instance ID]

The worker connects to the bus named in the config, serves /metrics on its
port and answers its control socket (ping, stats, stop). SIGTERM or Ctrl-C
drains and exits 0; a crash exits 1 (its traceback in the log); a configuration
error (bad setting, missing credentials, unsafe key file) exits 78 with one line.

example:
  kxfeed worker orderbook --config config/default.toml --log-json
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from services import registry
from services.cli.common import add_config_options, load, subcommand
from shared.actor import write_exit_note
from shared.config import EX_CONFIG, ConfigError
from shared.log import get_logger


def register(sub: Any) -> None:
    p = subcommand(sub, "worker", __doc__)
    p.add_argument("name", choices=list(registry.WORKER_MODULES), help="which worker")
    p.add_argument("--instance", default="", help="instance id when running several (e.g. shard 0)")
    add_config_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        cfg = load(args)
        cls = registry.worker_class(args.name)
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
