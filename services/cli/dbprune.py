"""``kxfeed db prune``: remove the stored rows past their ``[db] retention`` now (the writer
also does, every ``[db] prune_interval_s``), or with --dry-run show what would go."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from services.cli.common import action, add_config_options, load, when
from shared.config import DbConfig
from shared.messages import JSON_ENCODER
from shared.store import retention
from shared.store.audit import database_exists
from shared.store.engine import make_engine, redact
from shared.store.migrate import current_revision

HELP = """\
For every kind in [db] retention that is not kept forever (deltas, snapshots, tickers,
trades, lifecycle, gaps, signals, worker_events, fills, positions, orders, order_groups),
the rows whose ts (exchange time, else receive time) is older than the retention go:
PostgreSQL drops whole partitions of a table partitioned by day once their last day is past
the retention (the partition holding the cutoff stays whole), everything else is deleted in
batches of [db] prune_batch_rows rows. A row newer than the retention never goes; gap
records only by their own retention (gaps). --dry-run changes nothing and shows, per
table, the rows and partitions that would go and the oldest time that stays. Set it in the
config, e.g.:

  [db]
  retention = { deltas = "30d", snapshots = "90d", tickers = "30d", trades = "forever" }

Retentions: whole hours, days or weeks (12h, 30d, 2w) or "forever" (the default). Exit 0
when done (or nothing to do), 1 when a table could not be pruned (the others are), 2 on a
config or database problem (a bad [db] url, no database there, no kxfeed schema)."""


def register(verbs: Any) -> None:
    p = action(
        verbs,
        "prune",
        "remove the stored rows past [db] retention (--dry-run: show what would go)",
        HELP,
        "kxfeed db prune --dry-run",
        "kxfeed db prune --config config/prod.toml",
        "KXFEED_DB_URL=postgresql+asyncpg://kx@db/kx kxfeed db prune --dry-run --json",
    )
    p.add_argument("--dry-run", action="store_true", help="change nothing: show what would go")
    p.add_argument("--json", action="store_true", help="print JSON (one object per table)")
    add_config_options(p)
    p.set_defaults(func=run)


def _retention_text(keep: timedelta) -> str:
    hours = int(keep.total_seconds()) // 3600
    if hours % 24:
        return f"{hours}h"
    return f"{hours // 24}d"


def _at(ts: datetime | None) -> str:
    return when(ts) if ts is not None else "-"


def _print(rows: list[dict[str, Any]], dry_run: bool, forever: list[str]) -> None:
    if not rows:
        print("nothing to prune: [db] retention keeps every kind forever")
        return
    verb = "would go" if dry_run else "removed"
    head = f"{'table':<15} {'kind':<13} {'keep':>6}  {'cutoff (ts before)':<25} {verb:>22}  oldest kept"
    print(head)
    for r in rows:
        what = f"{r['rows']} rows"
        if r["partitions"]:
            what += f", {len(r['partitions'])} partitions"
        if r["error"]:
            what = "FAILED"
        print(
            f"{r['table']:<15} {r['kind']:<13} {r['keep']:>6}  {_at(r['cutoff']):<25} {what:>22}  "
            f"{_at(r.get('oldest_kept'))}"
        )
        for name in r["partitions"]:
            print(f"    partition {name}")
        if r["error"]:
            print(f"    error: {r['error']}")
    if forever:
        print(f"kept forever: {', '.join(forever)}")


def run(args: argparse.Namespace) -> int:
    cfg = load(args)
    try:
        targets = retention.targets(cfg.db.retention)
    except retention.RetentionError as exc:
        print(f"kxfeed db prune: {exc}", file=sys.stderr)
        return 2
    if not database_exists(cfg.db):
        print(f"kxfeed db prune: no database at {redact(cfg.db.url)}", file=sys.stderr)
        return 2
    return asyncio.run(_run(args, cfg.db, targets))


async def _run(args: argparse.Namespace, db: DbConfig, targets: list[retention.Target]) -> int:
    engine = make_engine(db)
    now = datetime.now(UTC)
    try:
        try:
            if await current_revision(engine) is None:
                print(
                    f"kxfeed db prune: {redact(db.url)} has no kxfeed schema; run `kxfeed db upgrade`",
                    file=sys.stderr,
                )
                return 2
        except (OSError, SQLAlchemyError) as exc:
            print(
                f"kxfeed db prune: cannot open {redact(db.url)}: {retention.describe(exc)}", file=sys.stderr
            )
            return 2
        rows: list[dict[str, Any]] = []
        if args.dry_run:
            for p in await retention.plan(engine, targets, now):
                rows.append(_row(p.kind, p.table, p.keep, p.cutoff, p.rows, p.partitions, p.error))
                rows[-1]["oldest_kept"] = p.oldest_kept
        else:
            keep = {t.kind: t.keep for t in targets}
            for r in await retention.prune(engine, targets, now, batch_rows=db.prune_batch_rows):
                rows.append(_row(r.kind, r.table, keep[r.kind], r.cutoff, r.rows, r.partitions, r.error))
    finally:
        await engine.dispose()
    finite = {t.kind for t in targets}
    forever = [k for k in retention.KIND_TABLES if k not in finite]
    if args.json:
        for row in rows:
            print(JSON_ENCODER.encode(row).decode())
    else:
        _print(rows, args.dry_run, forever)
    return 1 if any(r["error"] for r in rows) else 0


def _row(
    kind: str, table: str, keep: timedelta, cutoff: datetime, n: int, parts: list[str], error: str | None
) -> dict[str, Any]:
    return {
        "table": table,
        "kind": kind,
        "keep": _retention_text(keep),
        "cutoff": cutoff,
        "rows": n,
        "partitions": parts,
        "error": error,
    }
