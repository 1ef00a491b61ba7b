"""``kxfeed db history``: one market's stored deltas, snapshots, trades or tickers in a window,
page by page (as a table, or JSON lines with exact integers)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from typing import Any

import msgspec

from services.cli.common import action, add_config_options, contracts, dollars, load
from services.cli.instants import instant
from shared.store import history
from shared.store.engine import make_engine
from shared.store.migrate import current_revision
from shared.store.types import us_to_datetime

HELP = """\
Rows of one kind stored for TICKER with ts (exchange time, else receive time) in
[--since, --until), in the kind's key order: deltas by subscription (conn, sid) and
sequence, snapshots/trades/tickers by time. Times: ISO 8601 (no zone = UTC), ms since
the epoch, or an age back from now (15m, 2h, 3d). One page of --limit rows; when more
follow, stderr says the --cursor that continues; --all prints every page. A table shows
prices in dollars and counts in contracts; --json prints one JSON object per row with
the exact integers (prices in $0.0001, counts in hundredths) and ISO 8601 times in
microseconds. Exit 1 when the window holds no row, 2 on a usage or database problem."""


def register(verbs: Any) -> None:
    p = action(
        verbs,
        "history",
        "a market's stored deltas, snapshots, trades or tickers in a time window, paged",
        HELP,
        "kxfeed db history KXNFLGAME-25NOV23BUFHOU-BUF --kind trades --since 2h",
        "kxfeed db history KXNFLGAME-25NOV23BUFHOU-BUF --kind deltas --since 2026-12-03T14:00Z "
        "--until 2026-12-03T14:05Z --json --all",
    )
    p.add_argument("ticker", metavar="TICKER", help="market ticker")
    p.add_argument("--kind", required=True, choices=list(history.KINDS), help="what to list")
    p.add_argument("--since", metavar="TIME", help="from this time (inclusive; default: the first row)")
    p.add_argument("--until", metavar="TIME", help="to this time (exclusive; default: now and on)")
    p.add_argument(
        "--limit", type=int, default=100, help=f"rows per page, 1..{history.MAX_PAGE} (default 100)"
    )
    p.add_argument("--cursor", help="continue after the page that printed this cursor")
    p.add_argument("--all", action="store_true", help="print every page, not only the first")
    p.add_argument("--json", action="store_true", help="JSON lines, exact integers")
    add_config_options(p)
    p.set_defaults(func=run)


def _query(args: argparse.Namespace) -> history.Query:
    now = datetime.now(UTC)
    since = instant(args.since, now, "--since") if args.since else None
    until = instant(args.until, now, "--until") if args.until else None
    if since is not None and until is not None and until <= since:
        raise ValueError("--until must be after --since")
    if not 1 <= args.limit <= history.MAX_PAGE:
        raise ValueError(f"--limit {args.limit}: 1..{history.MAX_PAGE}")
    return history.Query(args.kind, ticker=args.ticker, since=since, until=until)


def _iso(us: int) -> str:
    return us_to_datetime(us).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _cell(col: history.Col, value: Any) -> str:
    if value is None:
        return "-"
    if col.type == "ts":
        return _iso(value)[:-4] + "Z"  # to the millisecond in a table
    if col.type == "levels":
        levels = msgspec.json.decode(value)
        best = max((p for p, _ in levels), default=None)
        return f"{len(levels)} levels" + (f", best {dollars(best)}" if best is not None else "")
    if col.unit == history.PRICE:
        return dollars(value)
    if col.unit == history.COUNT:
        return contracts(value)
    return str(value)


class Printer:
    def __init__(self, kind: history.Kind, as_json: bool) -> None:
        self.kind = kind
        self.as_json = as_json
        # The ticker is the command's argument: not repeated per row of a table.
        self.shown = [c for c in kind.columns if c.name != "ticker"]
        self.enc = msgspec.json.Encoder()

    def page(self, rows: list[tuple[Any, ...]], first: bool) -> None:
        if self.as_json:
            for r in rows:
                obj = {c.name: (_iso(v) if c.type == "ts" and v is not None else v)
                       for c, v in zip(self.kind.columns, r, strict=True)}  # fmt: skip
                sys.stdout.write(self.enc.encode(obj).decode() + "\n")
            return
        at = {c.name: i for i, c in enumerate(self.kind.columns)}
        cells = [[_cell(c, r[at[c.name]]) for c in self.shown] for r in rows]
        widths = [max([len(c.name), *(len(line[i]) for line in cells)]) for i, c in enumerate(self.shown)]
        if first:
            print("  ".join(c.name.ljust(w) for c, w in zip(self.shown, widths, strict=True)).rstrip())
        for line in cells:
            print("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())


def run(args: argparse.Namespace) -> int:
    try:
        q = _query(args)
    except ValueError as exc:
        print(f"kxfeed db history: {exc}", file=sys.stderr)
        return 2
    cfg = load(args)
    return asyncio.run(_run(args, cfg.db, q))


async def _run(args: argparse.Namespace, db: Any, q: history.Query) -> int:
    engine = make_engine(db)
    try:
        if await current_revision(engine) is None:
            print(
                "kxfeed db history: the database has no kxfeed schema; run `kxfeed db upgrade`",
                file=sys.stderr,
            )
            return 2
        out = Printer(history.KINDS[q.kind], args.json)
        cursor, total, first = args.cursor, 0, True
        while True:
            try:
                p = await history.page(engine, q, after=cursor, limit=args.limit)
            except history.BadCursor as exc:
                print(f"kxfeed db history: --cursor: {exc}", file=sys.stderr)
                return 2
            out.page(p.rows, first)
            total += len(p.rows)
            first = False
            cursor = p.cursor
            if cursor is None or not args.all:
                break
        if cursor is not None:
            print(f"more rows follow: --cursor {cursor}", file=sys.stderr)
        elif total == 0:
            print(f"kxfeed db history: no {q.kind} of {q.ticker} stored in that window", file=sys.stderr)
        return 0 if total else 1
    finally:
        await engine.dispose()
