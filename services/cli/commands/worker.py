"""Run one worker in the foreground (for debugging, honcho and systemd).

  kxfeed worker NAME [--config FILE] [--instance ID]

The worker connects to the bus named in the config, serves /metrics on its
port and answers its control socket (ping, stats, stop). SIGTERM or Ctrl-C
drains and exits 0. First it runs the offline part of `kxfeed check` for itself
(credentials, key file, ports, packaged data): a problem is one line, exit 2.

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
    cfg = load(args)
    # Offline: a restart during a database outage must reach the writer's own retry loop.
    if preflight_failed(f"kxfeed worker {args.name}", cfg, [args.name], offline=True):
        return 2
    try:
        cls = registry.worker_class(args.name)
    except KeyError as exc:
        print(f"kxfeed worker: {exc.args[0]}", file=sys.stderr)
        return 2
    return cls(cfg, instance=args.instance).run()
