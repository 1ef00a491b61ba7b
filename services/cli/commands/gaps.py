"""Sequence gaps: stored holes per subscription and every gap recorded, with how it was recovered.

Reads what the writer stored ([db] url): for each WS subscription (connection, sid)
with a snapshot in the window, the stored sequence range and its holes; a hole is
"after gap" when a gap recorded on that subscription starts at or before it (the
deltas dropped while the books waited for fresh snapshots), UNEXPLAINED otherwise
(data lost on the way to the database). Then the gaps recorded in the window: where,
why, how they were recovered (get_snapshot, resubscribe, reconnect, rest) and how
long it took. --json prints everything as JSON. Exit 2 on a config or database problem.

examples:
  kxfeed gaps
  kxfeed gaps --since 15m
  kxfeed gaps --since 2d --json --config config/prod.toml
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from services.cli.common import add_config_options, load, subcommand
from shared.config import ConfigError
from shared.messages import JSON_ENCODER
from shared.store.audit import Audit, audit, database_exists, parse_since
from shared.store.engine import make_engine, redact


def register(sub: Any) -> None:
    p = subcommand(sub, "gaps", __doc__)
    p.add_argument("--since", default="1h", metavar="AGE", help="how far back: 30s, 15m, 1h, 2d (default 1h)")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_config_options(p)
    p.set_defaults(func=run)


def _when(ts: datetime | None) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if ts is not None else "?"


def _print(res: Audit) -> None:
    print(
        f"since {_when(res.since)} UTC: {len(res.subscriptions)} subscriptions, {res.holes} holes "
        f"({res.unexplained} unexplained), {res.missing} sequence numbers missing"
    )
    for s in res.subscriptions:
        print(
            f"  conn {s.conn} sid {s.sid}: seq {s.first_seq}..{s.last_seq}, {s.stored} stored, "
            f"{len(s.holes)} holes, {s.missing} missing"
        )
        for a, b in s.holes:
            span = f"{a}..{b} ({b - a + 1})" if b != a else f"{a}"
            print(f"    missing {span}  {'UNEXPLAINED' if (a, b) in s.unexplained else 'after gap'}")
    methods = ", ".join(f"{k} {v}" for k, v in sorted(res.methods().items()))
    print(f"gaps recorded: {len(res.gaps)}" + (f" ({methods})" if methods else ""))
    for g in res.gaps:
        how = f"recovered by {g.method} in {g.duration_s:.3f}s" if g.duration_s is not None else "OPEN"
        first = g.tickers[0] if len(g.tickers) == 1 else f"{len(g.tickers)} markets"
        print(
            f"  {_when(g.detected)}  conn {g.conn} sid {g.sid} expected {g.expected} got {g.received}  "
            f"{g.reason}  {first}  {how}"
        )


def run(args: argparse.Namespace) -> int:
    try:
        window = parse_since(args.since)
    except ValueError as exc:
        print(f"kxfeed gaps: {exc}", file=sys.stderr)
        return 2
    cfg = load(args)
    if not database_exists(cfg.db):
        print(f"kxfeed gaps: no database at {redact(cfg.db.url)} (has the writer run?)", file=sys.stderr)
        return 2

    async def go() -> Audit:
        engine = make_engine(cfg.db)
        try:
            return await audit(engine, datetime.now(UTC) - window)
        finally:
            await engine.dispose()

    try:
        res = asyncio.run(go())
    except (SQLAlchemyError, OSError, ConfigError) as exc:
        print(f"kxfeed gaps: cannot read {redact(cfg.db.url)}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        summary = {
            "holes": res.holes,
            "unexplained": res.unexplained,
            "missing": res.missing,
            "methods": res.methods(),
            "durations_s": [g.duration_s for g in res.gaps],
        }
        sys.stdout.write(JSON_ENCODER.encode({"audit": res, **summary}).decode() + "\n")
        return 0
    _print(res)
    return 0
