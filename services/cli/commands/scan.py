"""Scan every live book at once: movers, spreads, stale books (from the orderbook worker).

  kxfeed scan movers  [--top N] [--window 5m] [--by mid|volume] [--json]
  kxfeed scan spreads [--top N] [--order widest|narrowest] [--json]
  kxfeed scan stale   [--top N] [--older-than 5m] [--json]

Answers come from the orderbook worker's live state over its control socket
([orderbook] control) in milliseconds, not from paging through REST. movers: the
largest mid change over the window (or most volume traded); the window's
resolution is [orderbook] movers_sample_s. spreads: VALID two-sided books by YES
spread. stale: INVALID books, and VALID books without a change for --older-than.
Durations: 90, 90s, 5m, 1h. Prices in dollars; --json gives exact integers
($0.0001, hundredths of a contract, doubled mids).

examples:
  kxfeed scan movers --top 20 --window 5m
  kxfeed scan spreads --order narrowest --top 10
  kxfeed scan stale --older-than 10m --json
"""

from __future__ import annotations

import argparse
from typing import Any

from services.cli import bookview as render
from services.cli.common import action, add_config_options, load, show_answer, subcommand
from shared.commands.base import Command
from shared.commands.movers import Movers
from shared.commands.spreads import Spreads
from shared.commands.stale import Stale

#: What an empty answer means, per scan.
EMPTY = {"movers": "book moved in the window", "spreads": "VALID two-sided book", "stale": "stale book"}

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def duration(text: str) -> float:
    """'90', '90s', '5m', '1h' -> seconds."""
    body, unit = (text[:-1], text[-1]) if text and text[-1] in _UNITS else (text, "s")
    try:
        value = float(body) * _UNITS[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 90, 90s, 5m, 1h)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"duration must be > 0: {text!r}")
    return value


def register(sub: Any) -> None:
    p = subcommand(sub, "scan", __doc__)
    kinds = p.add_subparsers(dest="scan", metavar="WHAT", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--top", type=int, default=20, help="rows to show (default 20)")
    common.add_argument("--json", action="store_true", help="print the answer as JSON (exact integers)")
    common.add_argument(
        "--timeout", type=float, default=3.0, help="seconds to wait for the worker (default 3)"
    )
    add_config_options(common)
    m = action(
        kinds,
        "movers",
        "largest mid change (or volume) over a window",
        "Ranks the live books by |mid change| over --window (or by contracts traded with --by volume).",
        "kxfeed scan movers --top 20 --window 5m",
        "kxfeed scan movers --by volume --json",
        parents=[common],
    )
    m.add_argument("--window", type=duration, default=300.0, help="look-back window (default 5m)")
    m.add_argument("--by", choices=["mid", "volume"], default="mid", help="rank by mid change or volume")
    s = action(
        kinds,
        "spreads",
        "widest or narrowest YES spreads",
        "VALID two-sided books ranked by YES spread (YES ask - YES bid).",
        "kxfeed scan spreads --order narrowest --top 10",
        parents=[common],
    )
    s.add_argument("--order", choices=["widest", "narrowest"], default="widest")
    st = action(
        kinds,
        "stale",
        "INVALID books and books without recent changes",
        "INVALID books (with the reason), then VALID books unchanged for --older-than.",
        "kxfeed scan stale --older-than 10m",
        parents=[common],
    )
    st.add_argument(
        "--older-than", type=duration, default=None, help="age limit (default [orderbook] stale_after_s)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = load(args)
    query: Command
    if args.scan == "movers":
        query = Movers(top=args.top, window_s=args.window, by=args.by)
    elif args.scan == "spreads":
        query = Spreads(top=args.top, order=args.order)
    else:
        query = Stale(top=args.top, older_than_s=args.older_than)
    return show_answer(
        args, f"kxfeed scan {args.scan}", cfg.orderbook.control, query, lambda r: _show(r, args)
    )


def _show(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    if not rows:
        print(f"no {EMPTY[args.scan]} (the orderbook worker holds no such book right now)")
    elif args.scan == "movers":
        print(render.movers(rows, args.by))
    elif args.scan == "spreads":
        print(render.spreads(rows, args.order))
    else:
        print(render.stale(rows))
