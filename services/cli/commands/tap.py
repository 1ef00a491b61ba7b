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
import time
from typing import Any

import zmq

from services.cli.common import WaitNotice, add_config_options, load, subcommand
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
    seen = 0
    last = time.monotonic()
    out = sys.stdout
    shown = ", ".join(repr(p) for p in args.prefixes)
    notice = WaitNotice("kxfeed tap", f"messages on {cfg.bus.xpub} with topic prefix {shown}")
    try:
        while not args.count or seen < args.count:
            batch = sub.recv_blocking(0.2)
            if not batch:
                notice.tick()
                if args.timeout and time.monotonic() - last > args.timeout:
                    print(f"kxfeed tap: no message for {args.timeout}s", file=sys.stderr)
                    return 1 if seen == 0 else 0
                continue
            last = time.monotonic()
            notice.heard()
            for msg in batch:
                out.write(JSON_ENCODER.encode(to_jsonable(msg)).decode() + "\n")
                seen += 1
                if args.count and seen >= args.count:
                    break
            out.flush()
    finally:
        sub.close()
        ctx.destroy(0)
    if sub.dropped:
        print(f"kxfeed tap: {sub.dropped} messages dropped on the way", file=sys.stderr)
    return 0
