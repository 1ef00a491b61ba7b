"""Run the bus proxy (XSUB/XPUB) that every worker connects to.

  kxfeed bus [--config FILE]

Publishers connect to [bus] xsub, subscribers (workers, `kxfeed tap`, your own
programs) to [bus] xpub. Same as `kxfeed worker bus`.

Bound beyond loopback (0.0.0.0, *, a host's address) both sockets are CURVE servers and need
[curve] server_key and allowed_clients (see `kxfeed keys`); without them it refuses to start.

examples:
  kxfeed bus
  export KXFEED_CURVE_SERVER_KEY=/etc/kxfeed/curve/server.key_secret
  export KXFEED_CURVE_ALLOWED_CLIENTS=/etc/kxfeed/curve/clients
  KXFEED_BUS_XPUB=tcp://0.0.0.0:5556 kxfeed bus
"""

from __future__ import annotations

import argparse
from typing import Any

from services import registry
from services.cli.common import add_config_options, load, preflight_failed, subcommand


def register(sub: Any) -> None:
    p = subcommand(sub, "bus", __doc__)
    add_config_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = load(args)
    if preflight_failed("kxfeed bus", cfg, ["bus"], offline=True):
        return 2
    return registry.worker_class("bus")(cfg).run()
