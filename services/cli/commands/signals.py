"""Show trading signals: the ones the writer stored, or live ones from the bus.

  kxfeed signals [--limit N] [--strategy S] [--ticker PREFIX] [--json]
  kxfeed signals --live [--count N] [--timeout S] [--ticker PREFIX] [--json]

Stored signals come from the database ([db] url), oldest of the newest N first.
--live prints each signal as the arb worker publishes it (topic signal.<ticker>).
A line: time, strategy (sportsbook: one market against the sportsbook consensus;
complement: every outcome of one game), market or event, side, size in contracts,
limit price, fair value, edge and fees per contract (per bundle for a complement),
then how it was found. --json prints exact integers: prices in $0.0001, sizes in
hundredths of a contract, fair value in ppm, money in micro-dollars; detail as stored.
An unknown --strategy is answered with the known ones (exit 2); no stored signal says so
(exit 1); --live says what it waits for while nothing arrives.

examples:
  kxfeed signals --limit 20
  kxfeed signals --live --ticker KXNBAGAME
  kxfeed signals --strategy complement --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from typing import Any

from services.cli.common import (
    Printing,
    add_config_options,
    choice,
    contracts,
    dollars,
    load,
    subcommand,
    when,
)
from shared.messages import JSON_ENCODER, Signal, to_jsonable

#: The arb worker's strategies (services/arb: detector and complement).
STRATEGIES = ("sportsbook", "complement")

COLUMNS = ("ts", "strategy", "ticker", "side", "price", "size", "fair_ppm", "edge", "fees", "legs", "detail")


def register(sub: Any) -> None:
    p = subcommand(sub, "signals", __doc__)
    p.add_argument(
        "--live", action="store_true", help="follow new signals on the bus instead of the database"
    )
    p.add_argument("--limit", type=int, default=50, help="stored: the newest N (default 50)")
    p.add_argument(
        "--strategy",
        type=choice("strategy", STRATEGIES),
        help=f"stored: only this strategy ({', '.join(STRATEGIES)})",
    )
    p.add_argument("--ticker", default="", help="only tickers starting with this (series, event, market)")
    p.add_argument("--count", type=int, default=0, help="live: stop after N signals")
    p.add_argument("--timeout", type=float, default=0.0, help="live: stop after S seconds without one")
    p.add_argument("--json", action="store_true", help="one JSON object per line (exact integers)")
    add_config_options(p)
    p.set_defaults(func=run)


def money(micro: int) -> str:
    sign = "-" if micro < 0 else ""
    whole, frac = divmod(abs(micro), 1_000_000)
    return f"{sign}${whole}.{frac:06d}".rstrip("0").rstrip(".") if frac else f"{sign}${whole}"


def describe(row: dict[str, Any]) -> str:
    """One human line for a signal (stored row or live message, same field names)."""
    try:
        detail: dict[str, Any] = json.loads(row.get("detail") or "{}")
    except ValueError:
        detail = {}
    how = []
    if row["strategy"] == "sportsbook":
        books = detail.get("books", [])
        how.append(f"{detail.get('method', '?')} {detail.get('consensus', '')} of {len(books)} books")
    else:
        how.append(f"{len(row.get('legs') or [])} legs, locked")
    if "limited_by" in detail:
        how.append(f"size limited by {detail['limited_by']}")
    if "latency_us" in detail:
        how.append(f"{detail['latency_us']} us after its {detail.get('trigger', 'trigger')}")
    fair = row["fair_ppm"]
    value = f"fair {fair / 10_000:.2f}%" if row["strategy"] == "sportsbook" else f"pays {money(fair)}"
    return (
        f"{row['when']}  {row['strategy']:<10} {row['ticker']:<34} {row['side']:<3} "
        f"{contracts(row['size']):>10} @ {dollars(row['price'])}  {value}  "
        f"edge {money(row['edge'])} fees {money(row['fees'])}  ({'; '.join(how)})"
    )


def run(args: argparse.Namespace) -> int:
    return live(args) if args.live else stored(args)


def stored(args: argparse.Namespace) -> int:
    # Imported here: SQLAlchemy and alembic take seconds on a busy machine, and a usage
    # mistake is answered before any of it is needed.
    from sqlalchemy import select

    from shared.store.engine import make_engine, redact
    from shared.store.migrate import current_revision
    from shared.store.schema import signals as table
    from shared.store.types import datetime_to_us

    cfg = load(args)

    async def go() -> int:
        engine = make_engine(cfg.db)
        try:
            if await current_revision(engine) is None:
                print(f"kxfeed signals: {redact(cfg.db.url)} has no kxfeed schema yet", file=sys.stderr)
                return 2
            q = select(*(table.c[c] for c in COLUMNS)).order_by(table.c.ts.desc(), table.c.recv.desc())
            if args.strategy:
                q = q.where(table.c.strategy == args.strategy)
            if args.ticker:
                q = q.where(table.c.ticker.startswith(args.ticker, autoescape=True))
            q = q.limit(max(0, args.limit))
            async with engine.connect() as conn:
                rows = [dict(r._mapping) for r in (await conn.execute(q)).all()]
        finally:
            await engine.dispose()
        if not rows:
            parts = [f"strategy {args.strategy}"] if args.strategy else []
            parts += [f"ticker {args.ticker}*"] if args.ticker else []
            which = f" for {' and '.join(parts)}" if parts else ""
            print(f"no signals stored{which} in {redact(cfg.db.url)}", file=sys.stderr)
            return 1
        for row in reversed(rows):
            row["legs"] = json.loads(row["legs"]) if row["legs"] else []
            ts: datetime = row.pop("ts")
            if args.json:
                row["ts_us"] = datetime_to_us(ts)
                print(JSON_ENCODER.encode(row).decode())
            else:
                row["when"] = when(ts)
                print(describe(row))
        return 0

    return asyncio.run(go())


def live(args: argparse.Namespace) -> int:
    import zmq

    from shared.bus import Subscriber

    cfg = load(args)
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sub = Subscriber(ctx, cfg.bus.xpub, [f"signal.{args.ticker}"], rcvhwm=cfg.bus.rcvhwm)
    what = f"signals on {cfg.bus.xpub} (topic signal.{args.ticker})"
    printing = Printing("kxfeed signals", what, args.count, args.timeout, "signal")
    try:
        while not printing.done:
            batch = sub.recv_blocking(0.2)
            if not batch:
                status = printing.idle()
                if status is not None:
                    return status
                continue
            printing.heard()
            for m in batch:
                if not isinstance(m, Signal):
                    continue
                row = to_jsonable(m)
                if args.json:
                    print(JSON_ENCODER.encode(row).decode())
                else:
                    row["when"] = when(datetime.fromtimestamp(m.ts_recv / 1e9, UTC))
                    print(describe(row))
                if printing.printed():
                    break
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    finally:
        sub.close()
        ctx.destroy(0)
    return 0
