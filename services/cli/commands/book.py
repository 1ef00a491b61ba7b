"""Show one market's live order book, from the running orderbook worker; or, with --at, the
book as it was at a moment, rebuilt from the database.

  kxfeed book TICKER [--depth N] [--json]
  kxfeed book TICKER --at TIME [--depth N] [--json]

Asks the orderbook worker's control socket ([orderbook] control). Prints validity
(an INVALID book says why and shows no market), the top of book with mid, spread
and implied probability, then the levels: YES bids, NO bids and the YES asks they
imply ($1 - NO bid), best first. Prices in dollars, sizes in contracts.
--json prints the worker's answer as is: prices are integers in $0.0001, sizes in
hundredths of a contract, mids doubled (mid_x2) to stay exact.

--at TIME ([db] url; ISO 8601 with no zone = UTC, ms since the epoch, or an age such as
15m): the newest WebSocket snapshot stored with ts <= TIME, then the deltas stored after it
on its subscription up to TIME, applied by the orderbook's own book core. INVALID when a
delta breaks the book as it would break the live one, or when the stored sequence has a
hole between the snapshot and the last delta ("gap"). Exit 1 when no snapshot of TICKER
is stored at or before TIME.

examples:
  kxfeed book KXNFLGAME-25NOV23BUFHOU-BUF
  kxfeed book KXNFLGAME-25NOV23BUFHOU-BUF --depth 0 --json   # every level
  kxfeed book KXNFLGAME-25NOV23BUFHOU-BUF --at 2026-12-03T14:30:00Z
"""

from __future__ import annotations

import argparse
from typing import Any

from services.cli import bookview as render
from services.cli.common import add_config_options, load, show_answer, subcommand
from shared.commands.book import Book


def register(sub: Any) -> None:
    p = subcommand(sub, "book", __doc__)
    p.add_argument("ticker", help="market ticker")
    p.add_argument("--depth", type=int, default=10, help="levels per side (0: all; default 10)")
    p.add_argument("--json", action="store_true", help="print the answer as JSON (exact integers)")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the worker (default 3)")
    p.add_argument("--at", metavar="TIME", help="the book as stored at this moment (from the database)")
    add_config_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.at is not None:
        from services.cli.bookat import run_at  # SQLAlchemy only when the database is asked

        return run_at(args)
    command = Book(ticker=args.ticker, depth=args.depth)
    return show_answer(
        args, "kxfeed book", load(args).orderbook.control, command, lambda a: print(render.book(a))
    )
