"""Export throughput: rows/s from SQLite to Parquet and CSV through ``kxfeed export``'s code
(shared/export.py over shared/store/history.py), and in the same run the raw read limit.

  .venv/bin/python bench/export.py [--rows N] [--batch B]

N book deltas (the bulk of stored data) are stored through the writer's own core and store
into a fresh SQLite file; then the whole table is exported, timed from the first query to
the renamed file (gap table included; pyarrow imported before, once per process).
Limit: sqlite3 reading the stored rows (book deltas are packed: the runs' columns, their
bodies included) with fetchmany(64), nothing done with them: what any exporter in Python
starts from. Deltas per second of that read are printed beside it.
Target (issue 19): Parquet export >= 500,000 rows/s from SQLite.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared import export as ex  # noqa: E402
from shared.config import DbConfig  # noqa: E402
from shared.store import history  # noqa: E402
from shared.store.engine import make_engine  # noqa: E402
from tests.support.stored import store_messages  # noqa: E402
from tests.support.synth import deltas, stamp  # noqa: E402

TARGET = 500_000


def raw_limit(path: Path) -> tuple[float, int]:
    """(seconds, deltas) of reading every stored run in key order."""
    con = sqlite3.connect(path)
    try:
        t0 = time.perf_counter()
        cur = con.execute(
            'SELECT "conn", "sid", "first_xseq", "last_xseq", "n", "body" FROM "book_deltas" '
            'ORDER BY "conn", "sid", "first_xseq"'
        )
        n = 0
        while rows := cur.fetchmany(64):
            n += sum(r[4] for r in rows)
        return time.perf_counter() - t0, n
    finally:
        con.close()


async def kxfeed_export(db: DbConfig, fmt: ex.Format, out: Path, batch: int) -> tuple[float, int]:
    engine = make_engine(db)
    try:
        t0 = time.perf_counter()
        res = await ex.export(engine, history.Query("deltas"), fmt, out, batch=batch)
        return time.perf_counter() - t0, res.rows
    finally:
        await engine.dispose()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=1_000_000, help="deltas (default 1,000,000)")
    p.add_argument("--batch", type=int, default=ex.BATCH, help=f"rows per batch (default {ex.BATCH:,})")
    args = p.parse_args()
    n = args.rows
    print(f"export bench: {n:,} book deltas from SQLite, batches of {args.batch:,} rows")
    with tempfile.TemporaryDirectory(prefix="kxbench-") as tmp:
        d = Path(tmp)
        db = DbConfig(url=f"sqlite+aiosqlite:///{d / 'kx.db'}")
        t0 = time.perf_counter()
        asyncio.run(store_messages(db, stamp(deltas(n, markets=200)), batch=20_000))
        print(f"stored through the writer's core and store in {time.perf_counter() - t0:.1f} s")
        took, got = raw_limit(d / "kx.db")
        assert got == n, (got, n)
        limit = n / took
        print(f"limit (sqlite3 fetchmany of the runs)      {limit:>11,.0f} rows/s")
        ok = True
        ex.arrow_schema(history.KINDS["deltas"], None)  # the import, a one-off, outside the clock
        for fmt in ex.FORMATS:
            out = d / f"deltas.{fmt}"
            took, got = asyncio.run(kxfeed_export(db, fmt, out, args.batch))
            assert got == n, (got, n)
            rate = n / took
            size = out.stat().st_size
            line = (
                f"kxfeed export --format {fmt:<7} {rate:>11,.0f} rows/s = {rate / limit:4.0%} of the limit"
                f" | {size / n:5.1f} bytes/row on disk"
            )
            if fmt == "parquet":
                good = rate >= TARGET
                ok &= good
                line += f" | target >= {TARGET:,} rows/s: {'PASS' if good else 'FAIL'}"
            print(line)
    print(f"machine: {os.cpu_count()} cores, shared; load average {os.getloadavg()[0]:.2f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
