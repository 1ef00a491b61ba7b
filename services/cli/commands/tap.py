"""Print live bus messages as JSON lines.

  kxfeed tap [PREFIX ...] [--count N] [--timeout S]

PREFIX filters by topic prefix: topics are <kind>.<market_ticker> (or
<kind>.<worker>), so 'delta.' takes every book delta, 'tob.KXNFLGAME' the top
of book of every NFL game market, '' everything. Each line is one message with
its field names and "kind"; prices are integers in $0.0001, counts in
hundredths of a contract. Exits after N messages, or after S seconds without one.
While nothing arrives it says on stderr what it waits for (the bus endpoint and the
prefixes), after 2 s and then every 10 s.

With --jetstream SUBJECT it reads NATS JetStream instead of the bus, from any host that reaches
the [jetstream] servers: subjects are kxfeed.<kind>.<series>.<ticker> ('kxfeed.trade.>',
'kxfeed.delta.KXNFLGAME.>'), from --since TIME (ISO 8601, epoch ms, or an age: 15m, 2h), else
from now on.

examples:
  kxfeed tap 'trade.' --count 10
  kxfeed tap 'tob.KXNBAGAME-26NOV03LALBOS' 'bookstate.'
  kxfeed tap --jetstream 'kxfeed.trade.>' --since 1h
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import zmq

from services.cli.common import Printing, add_config_options, load, subcommand
from shared.bus import Subscriber
from shared.messages import JSON_ENCODER, to_jsonable


def register(sub: Any) -> None:
    p = subcommand(sub, "tap", __doc__)
    p.add_argument(
        "prefixes", nargs="*", default=[""], metavar="PREFIX", help="topic prefixes (default: all)"
    )
    p.add_argument("--count", type=int, default=0, help="stop after N messages (default: run until Ctrl-C)")
    p.add_argument(
        "--timeout", type=float, default=0.0, help="stop after S seconds with no message (0: never)"
    )
    p.add_argument("--jetstream", metavar="SUBJECT", default="", help="read this JetStream subject instead")
    p.add_argument("--since", metavar="TIME", default="", help="with --jetstream: from this moment")
    add_config_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = load(args)
    if args.jetstream:
        from services.cli import jstap  # nats-py only for this mode

        return jstap.run(args, cfg)
    if args.since:
        print("kxfeed tap: --since needs --jetstream (the bus has no history)", file=sys.stderr)
        return 2
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sub = Subscriber(ctx, cfg.bus.xpub, args.prefixes, rcvhwm=cfg.bus.rcvhwm)
    out = sys.stdout
    shown = ", ".join(repr(p) for p in args.prefixes)
    what = f"messages on {cfg.bus.xpub} with topic prefix {shown}"
    printing = Printing("kxfeed tap", what, args.count, args.timeout)
    try:
        while not printing.done:
            batch = sub.recv_blocking(0.2)
            if not batch:
                status = printing.idle()
                if status is not None:
                    return status
                continue
            printing.heard()
            for msg in batch:
                out.write(JSON_ENCODER.encode(to_jsonable(msg)).decode() + "\n")
                if printing.printed():
                    break
            out.flush()
    finally:
        sub.close()
        ctx.destroy(0)
    if sub.dropped:
        print(f"kxfeed tap: {sub.dropped} messages dropped on the way", file=sys.stderr)
    return 0
