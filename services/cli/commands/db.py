"""Database: migrate the schema and query what the writer stored.

  kxfeed db upgrade                    create or migrate the schema to this version's head
  kxfeed db latest TICKER [--json]     latest top of book (order book, WS ticker, poll; the
                                       newest is marked), the last trade, the market's strikes
  kxfeed db latest [TICKER] --table fills|positions|orders [--limit N] [--json]
                                       this account's newest fills / positions / order states
  kxfeed db gaps TICKER [--json]       stored sequence holes per subscription (connection,
                                       sid) that carried TICKER, as a list and a count
  kxfeed db stats [--hours N] [--json] rows and bytes per table; rows per hour (receive time)
  kxfeed db history TICKER --kind deltas|snapshots|trades|tickers [--since T] [--until T]
                  [--limit N] [--cursor C] [--all] [--json]
                                       stored rows of a market in a time window, paged
  kxfeed db prune [--dry-run] [--json]  remove the rows past [db] retention (the writer also
                                       does, every [db] prune_interval_s); --dry-run shows
                                       per table what would go and the oldest time kept

The database is [db] url (KXFEED_DB_URL overrides it): a SQLite file by default,
PostgreSQL with postgresql+asyncpg://user@host/db. Prices print in dollars ($0.4300)
and counts in contracts (25.00); --json prints the exact integers (prices in
$0.0001, counts in hundredths). Exit 2 on a config or schema problem.

examples:
  kxfeed db upgrade --config config/prod.toml
  kxfeed db latest KXNFLGAME-25NOV23BUFHOU-BUF
  kxfeed db latest --table fills --limit 50
  KXFEED_DB_URL=postgresql+asyncpg://kx@db/kx kxfeed db stats --hours 6
  kxfeed db history KXNFLGAME-25NOV23BUFHOU-BUF --kind trades --since 2h
  kxfeed db prune --dry-run
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from services.cli import dbhistory, dbprune
from services.cli.common import action, add_config_options, contracts, dollars, load, subcommand, when
from shared.config import Config
from shared.messages import JSON_ENCODER
from shared.store import queries
from shared.store.engine import make_engine, redact
from shared.store.migrate import SchemaTooNew, current_revision, head_revision, upgrade
from shared.units import format_money


def register(sub: Any) -> None:
    p = subcommand(sub, "db", __doc__)
    verbs = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    up = action(
        verbs,
        "upgrade",
        "create or migrate the schema to this version's head",
        "Applies the migrations this kxfeed ships to [db] url (the writer also does at start);\n"
        "refuses a database stamped by a newer kxfeed.",
        "kxfeed db upgrade",
        "kxfeed db upgrade --config config/prod.toml",
    )
    add_config_options(up)
    up.set_defaults(func=run_upgrade)
    lt = action(
        verbs,
        "latest",
        "latest top of book and last trade of a market; or this account's fills/positions",
        "Top of book from the order book, the WS ticker and the poller (the newest marked *),\n"
        "then the last stored trade and the market's stored state (status, strikes). Exit 1 when\n"
        "nothing is stored for TICKER. With --table fills|positions|orders: this account's newest\n"
        "fills, position snapshots or order states (of TICKER, or of every market), newest first;\n"
        "exit 1 when none.",
        "kxfeed db latest KXNFLGAME-25NOV23BUFHOU-BUF",
        "kxfeed db latest KXNFLGAME-25NOV23BUFHOU-BUF --json",
        "kxfeed db latest --table fills",
        "kxfeed db latest KXNFLGAME-25NOV23BUFHOU-BUF --table positions --limit 5",
    )
    lt.add_argument("ticker", metavar="TICKER", nargs="?", help="market ticker (optional with --table)")
    lt.add_argument(
        "--table",
        choices=sorted(queries.LISTED_TABLES),
        help="list this account's fills, positions or order states",
    )
    lt.add_argument("--limit", type=int, default=20, help="rows to list with --table (default 20)")
    gp = action(
        verbs,
        "gaps",
        "stored sequence holes per subscription of a market",
        "For each WS subscription (connection, sid) that carried TICKER: the stored sequence\n"
        "range, its holes, and the gap events the connector recorded.",
        "kxfeed db gaps KXNFLGAME-25NOV23BUFHOU-BUF",
    )
    gp.add_argument("ticker", metavar="TICKER", help="market ticker")
    for q, func in ((lt, run_latest), (gp, run_gaps)):
        q.add_argument("--json", action="store_true", help="print JSON (exact integers)")
        add_config_options(q)
        q.set_defaults(func=func)
    st = action(
        verbs,
        "stats",
        "rows and bytes per table, rows per hour",
        "Row counts and on-disk size per table (KiB = 1024 bytes), then rows stored per hour\n"
        "(by receive time) with an estimated size.",
        "kxfeed db stats",
        "KXFEED_DB_URL=postgresql+asyncpg://kx@db/kx kxfeed db stats --hours 6 --json",
    )
    st.add_argument("--hours", type=int, default=24, help="hours of per-hour rows to show (default 24)")
    st.add_argument("--json", action="store_true", help="print JSON")
    add_config_options(st)
    st.set_defaults(func=run_stats)
    dbhistory.register(verbs)
    dbprune.register(verbs)


def _with_engine(cfg: Config, body: Callable[[AsyncEngine], Awaitable[int]]) -> int:
    async def go() -> int:
        engine = make_engine(cfg.db)
        try:
            return await body(engine)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def run_upgrade(args: argparse.Namespace) -> int:
    cfg = load(args)

    async def body(engine: AsyncEngine) -> int:
        try:
            before, after = await upgrade(engine, cfg.db)
        except SchemaTooNew as exc:
            print(f"kxfeed db upgrade: {exc}", file=sys.stderr)
            return 2
        if before == after:
            print(f"{redact(cfg.db.url)}: schema already at {after}")
        else:
            print(f"{redact(cfg.db.url)}: schema {before or '(empty)'} -> {after}")
        return 0

    return _with_engine(cfg, body)


async def _check_schema(engine: AsyncEngine, url: str) -> bool:
    rev = await current_revision(engine)
    if rev is None:
        print(f"kxfeed db: {redact(url)} has no kxfeed schema; run `kxfeed db upgrade`", file=sys.stderr)
        return False
    if rev != head_revision():
        print(f"kxfeed db: note: schema {rev}, this kxfeed knows {head_revision()}", file=sys.stderr)
    return True


def _run_query(args: argparse.Namespace, body: Callable[[AsyncEngine], Awaitable[int]]) -> int:
    cfg = load(args)

    async def checked(engine: AsyncEngine) -> int:
        if not await _check_schema(engine, cfg.db.url):
            return 2
        return await body(engine)

    return _with_engine(cfg, checked)


def _print_json(value: Any) -> None:
    print(JSON_ENCODER.encode(queries.jsonable(value)).decode())


def run_latest(args: argparse.Namespace) -> int:
    if args.table is not None:
        return _run_query(args, lambda engine: _list_table(engine, args))
    if args.ticker is None:
        print("kxfeed db latest: TICKER is required (or --table fills|positions|orders)", file=sys.stderr)
        return 2

    async def body(engine: AsyncEngine) -> int:
        res = await queries.latest(engine, args.ticker)
        newest = res.newest
        if args.json:
            data = queries.jsonable(res)
            data["newest"] = newest.source if newest else None
            _print_json(data)
            return 0 if res.tops or res.trade else 1
        print(res.ticker)
        if not res.tops and res.trade is None:
            print("  nothing stored for this market" + (": only its state" if res.market else ""))
            _print_market(res.market)
            return 1
        print("  top of book" + (f" (newest: {newest.source})" if newest else ": none stored"))
        for top in sorted(res.tops, key=lambda t: t.ts, reverse=True):
            mark = "*" if top is newest else " "
            bid = f"{dollars(top.yes_bid)} x {contracts(top.yes_bid_size)}"
            ask = f"{dollars(top.yes_ask)} x {contracts(top.yes_ask_size)}"
            line = f"  {mark} {top.source:<5} {when(top.ts)}  yes bid {bid:<18} yes ask {ask:<18}"
            print(f"{line} {top.detail}")
        t = res.trade
        if t is None:
            print("  last trade: none stored")
        else:
            print(
                f"  last trade {when(t.ts)}  yes {dollars(t.yes_price)} no {dollars(t.no_price)} "
                f"count {contracts(t.count)} taker {t.taker_side}  ({t.trade_id})"
            )
        _print_market(res.market)
        return 0

    return _run_query(args, body)


def _print_market(mk: queries.StoredMarket | None) -> None:
    if mk is None:
        print("  market: no stored state")
        return
    print(f"  market {mk.status or '-'}  {mk.title or ''}".rstrip())
    print(f"  strike {_strike(mk)}")


def _strike(mk: queries.StoredMarket) -> str:
    """The strike as Kalshi states it (exact decimal text); "none stored" when never said."""
    if mk.strike_type is None and mk.floor_strike is None and mk.cap_strike is None:
        return "none stored"
    return f"{mk.strike_type or '-'} floor {mk.floor_strike or '-'} cap {mk.cap_strike or '-'}"


def _money(micro: int) -> str:
    """Micro-dollars as dollars, exactly ("$0.087500", "-$10.000000")."""
    text = format_money(micro)
    return f"-${text[1:]}" if text.startswith("-") else f"${text}"


def _fill_line(r: dict[str, Any]) -> str:
    role = "taker" if r["is_taker"] else "maker"
    mine = f" client {r['client_order_id']}" if r["client_order_id"] else ""
    return (
        f"  {when(r['ts'])}  {r['ticker']}  {r['action'] or '-'} {r['side']} {contracts(r['count'])} "
        f"@ yes {dollars(r['yes_price'])}  fee {_money(r['fee'])} {role}  "
        f"position after {contracts(r['post_position'])}  (trade {r['trade_id']} order {r['order_id']}{mine})"
    )


def _position_line(r: dict[str, Any]) -> str:
    return (
        f"  {when(r['ts'])}  {r['ticker']}  position {contracts(r['position'])}  "
        f"cost {_money(r['position_cost'])}  realized {_money(r['realized_pnl'])}  "
        f"fees {_money(r['fees_paid'])}  volume {contracts(r['volume'])}"
    )


def _order_line(r: dict[str, Any]) -> str:
    fees = [_money(v) for k in ("taker_fees", "maker_fees") if (v := r[k]) is not None]
    mine = f" client {r['client_order_id']}" if r["client_order_id"] else ""
    return (
        f"  {when(r['ts'])}  {r['ticker']}  {r['status']} {r['side']} @ yes {dollars(r['yes_price'])}  "
        f"filled {contracts(r['fill_count'])} of {contracts(r['initial_count'])}, "
        f"{contracts(r['remaining_count'])} resting"
        + (f"  fees {' + '.join(fees)}" if fees else "")
        + f"  (order {r['order_id']}{mine})"
    )


_LINES = {"fills": _fill_line, "positions": _position_line, "orders": _order_line}


async def _list_table(engine: AsyncEngine, args: argparse.Namespace) -> int:
    rows = await queries.recent_rows(engine, args.table, args.ticker, max(args.limit, 1))
    if args.json:
        _print_json({"table": args.table, "ticker": args.ticker, "rows": rows})
        return 0 if rows else 1
    scope = args.ticker or "all markets"
    print(f"{args.table} ({scope}, newest first)")
    if not rows:
        print("  none stored")
        return 1
    line = _LINES[args.table]
    for r in rows:
        print(line(r))
    return 0


def run_gaps(args: argparse.Namespace) -> int:
    async def body(engine: AsyncEngine) -> int:
        res = await queries.gap_report(engine, args.ticker)
        if args.json:
            data = queries.jsonable(res)
            data.update(missing=res.missing, holes=res.holes)
            _print_json(data)
            return 0
        print(f"{res.ticker}: {res.holes} holes, {res.missing} sequence numbers missing")
        if not res.subscriptions:
            print("  no WS subscription with a stored snapshot of this market")
        for s in res.subscriptions:
            print(
                f"  conn {s.conn} sid {s.sid}: seq {s.first_seq}..{s.last_seq}, {s.stored} stored, "
                f"{len(s.holes)} holes, {s.missing} missing"
            )
            for a, b in s.holes:
                print(f"    missing {a}" + (f"..{b} ({b - a + 1})" if b != a else ""))
        if res.events:
            print("  gap events recorded by the connector:")
            for e in res.events:
                print(
                    f"    {when(e.ts)} conn {e.conn} sid {e.sid} expected {e.expected} got {e.received}: "
                    f"{e.status} ({e.reason}{', ' + e.method if e.method else ''})"
                )
        return 0

    return _run_query(args, body)


def size(n: int | None) -> str:
    """Bytes for humans: 512 B, 2.0 KiB, 1.5 MiB (binary units)."""
    if n is None:
        return "-"
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"


def run_stats(args: argparse.Namespace) -> int:
    async def body(engine: AsyncEngine) -> int:
        res = await queries.stats(engine, hours=args.hours, now=datetime.now(UTC))
        if args.json:
            _print_json(res)
            return 0
        print(f"{'table':<16} {'rows':>14} {'bytes':>12}")
        for t in res.tables:
            print(f"{t.table:<16} {t.rows:>14} {size(t.bytes):>12}")
        if not any(t.rows for t in res.tables):
            print("(no rows stored yet: has the writer run against this database?)")
        print(f"\nper hour (receive time, last {args.hours} h)")
        if not res.hours:
            print("  no rows stored in that window")
        for hour, table, rows, est in res.hours:
            print(f"  {when(hour)}  {table:<16} {rows:>12} rows  ~{size(est)}")
        return 0

    return _run_query(args, body)
