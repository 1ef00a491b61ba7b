"""Export stored market data to Parquet or CSV, with the gap table of the same window beside it.

  kxfeed export --kind deltas|snapshots|trades|tickers [--since T] [--until T]
                [--ticker TICKER | --series SERIES] --format parquet|csv --out PATH

Rows with ts (exchange time, else receive time) in [--since, --until), of one market, of
one series' markets, or of all; in the kind's key order (deltas by subscription and
sequence, the others per market by time). Streaming: memory stays bounded by one batch
whatever the window holds. Exact: prices (in $0.0001) and counts (in hundredths of a
contract) are integers, each column's unit in the Parquet schema metadata (CSV: in
PATH.meta.json beside it); times are timestamp[us, UTC] (CSV: integer microseconds since
the epoch). The connector's gap records of the window go to NAME.gaps.EXT beside PATH:
where the record is incomplete. Times: ISO 8601 (no zone = UTC), ms since the epoch, or
an age back from now (15m, 2h, 3d). Parquet needs pyarrow (pip install 'kxfeed[export]').
Prints what was written. Exit 2 on a usage, config or database problem.

examples:
  kxfeed export --kind deltas --since 1d --format parquet --out data/deltas.parquet
  kxfeed export --kind trades --series KXNFLGAME --since 2026-12-01 --until 2026-12-03 \\
      --format csv --out trades.csv
  duckdb -c "SELECT ticker, count(*) FROM 'data/deltas.parquet' GROUP BY ticker"
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.cli.common import add_config_options, load, subcommand
from services.cli.instants import instant
from shared import export as ex
from shared.config import DbConfig
from shared.store import history
from shared.store.engine import make_engine, redact
from shared.store.migrate import current_revision


def register(sub: Any) -> None:
    p = subcommand(sub, "export", __doc__)
    p.add_argument("--kind", required=True, choices=list(history.KINDS), help="what to export")
    p.add_argument("--since", metavar="TIME", help="from this time (inclusive; default: the first row)")
    p.add_argument("--until", metavar="TIME", help="to this time (exclusive; default: the last row)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--ticker", help="only this market")
    which.add_argument("--series", help="only the markets of this series (as stored in markets)")
    p.add_argument("--format", required=True, choices=ex.FORMATS, help="file format")
    p.add_argument("--out", required=True, type=Path, metavar="PATH", help="the file to write")
    p.add_argument("--batch", type=int, default=ex.BATCH, help=f"rows per batch / row group ({ex.BATCH})")
    add_config_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    try:
        since = instant(args.since, now, "--since") if args.since else None
        until = instant(args.until, now, "--until") if args.until else None
        if since is not None and until is not None and until <= since:
            raise ValueError("--until must be after --since")
        if not 1 <= args.batch <= 1_000_000:
            raise ValueError(f"--batch {args.batch}: 1..1000000")
    except ValueError as exc:
        print(f"kxfeed export: {exc}", file=sys.stderr)
        return 2
    q = history.Query(args.kind, ticker=args.ticker, series=args.series, since=since, until=until)
    return asyncio.run(_run(args, load(args).db, q))


async def _run(args: argparse.Namespace, db: DbConfig, q: history.Query) -> int:
    engine = make_engine(db)
    try:
        if await current_revision(engine) is None:
            print(
                f"kxfeed export: {redact(db.url)} has no kxfeed schema; run `kxfeed db upgrade`",
                file=sys.stderr,
            )
            return 2
        t0 = time.perf_counter()
        try:
            res = await ex.export(engine, q, args.format, args.out, batch=args.batch)
        except (ex.ExportUnavailable, OSError) as exc:
            print(f"kxfeed export: {exc}", file=sys.stderr)
            return 2
        took = time.perf_counter() - t0
    finally:
        await engine.dispose()
    print(f"{res.path}: {res.rows} {q.kind} rows ({took:.1f} s)")
    print(f"{res.gaps_path}: {res.gaps} gap records of the window")
    for p in res.extra:
        print(f"{p}: columns, units and window")
    return 0
