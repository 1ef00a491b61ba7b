"""Writer throughput and storage: rows/s stored from the bus into PostgreSQL and SQLite, bytes
per stored delta, and in the same run the same figures of the writer before packed deltas
(today's, the baseline) and of the raw libraries on the old row-per-delta table (the limits).

  .venv/bin/python bench/writer.py [--rows N] [--frame M] [--pg URL] [--no-pg] [--baseline REV]

Baseline: the kxfeed tree at REV (default: the commit before migration 0007 packed the book
deltas), exported with ``git archive`` into the bench's temporary directory and run as the same
writer process on the same stream: its rate and bytes are "today's" in this run. The two
writers run alternately ``--repeat`` times each (default 2) and the best rate of each is
compared: on a shared machine the load moves between runs.

kxfeed path: a producer process publishes N book deltas (journaled, M per bus frame) to an
in-process bus proxy; the real writer process (``kxfeed worker writer``, default batching)
stores them; the clock runs from the first publish to the last row committed.
Limits: asyncpg COPY into a temp staging table + INSERT ... ON CONFLICT DO NOTHING, and
sqlite3 executemany with INSERT OR IGNORE, 10,000-row batches, one transaction each, into
the same book_deltas table (same primary key), rows prepared beforehand. The PostgreSQL
limit also upserts its stream position (stream_offsets) in each transaction, as the writer
must for exactly-once. SQLite's limit uses the writer's durability (WAL, synchronous=NORMAL,
the [db] default). Each limit runs right before each run of the current writer, and its
best is compared with the writer's best (the load moves between runs).
Targets (issue 6): PostgreSQL >= 100,000 rows/s and >= 65% of its limit; SQLite >= 100,000
rows/s. Issue 19: <= 60 bytes per stored delta in PostgreSQL and <= 35 in SQLite (heap, TOAST
and indexes: pg_total_relation_size; dbstat pages of the table and its indexes), at a write
rate not lower than the baseline's in the same run. Also prints the storage of an hour of 100
markets x 1 update/s, stored as the writer batches it at that rate (batch_ms: 20 deltas a
batch, one subscription), against the baseline's bytes per delta at the same rate.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import zmq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from services.writer.rows import BatchBuilder  # noqa: E402
from shared.bus import Proxy, Publisher  # noqa: E402
from shared.commands.stats import Stats  # noqa: E402
from shared.config import DbConfig, WriterConfig  # noqa: E402
from shared.control import request  # noqa: E402
from shared.journal import JournalWriter  # noqa: E402
from shared.store.engine import make_engine  # noqa: E402
from shared.store.migrate import upgrade  # noqa: E402
from shared.store.schema import APPEND  # noqa: E402
from shared.store.sql import Sql, integer_timestamps  # noqa: E402
from tests.support.pg import drop_schema  # noqa: E402
from tests.support.stored import store_messages  # noqa: E402
from tests.support.synth import deltas, stamp  # noqa: E402

RAW_BATCH = 10_000
COLS = APPEND["book_deltas"].columns
PACKED_MIGRATION = Path("shared/store/migrations/versions/0007_packed_deltas.py")
HOUR_MARKETS = 100
#: Issue 19's storage targets, bytes per stored delta.
PG_BYTES, SQLITE_BYTES = 60, 35
#: Issue 21: the writer's rate as a share of its raw limit, SQLite and PostgreSQL alike.
LIMIT_SHARE = 0.65


def rows_for(n: int) -> list[tuple[Any, ...]]:
    """The writer's rows for n deltas (timestamps as integer microseconds)."""
    b = BatchBuilder({})
    for m in deltas(n, sid=2):
        b.add(m)
    return b.rows["book_deltas"]


# ---- raw limits -------------------------------------------------------------------------------


def sqlite_limit(n: int, directory: Path) -> float:
    path = directory / "raw.db"
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute(
        "CREATE TABLE book_deltas (conn INTEGER NOT NULL, sid INTEGER NOT NULL, xseq INTEGER NOT NULL, "
        "ticker TEXT NOT NULL, side TEXT NOT NULL, price INTEGER NOT NULL, delta INTEGER NOT NULL, "
        "ts INTEGER NOT NULL, recv INTEGER NOT NULL, PRIMARY KEY (conn, sid, xseq)) WITHOUT ROWID"
    )
    rows = rows_for(n)
    sql = f"INSERT OR IGNORE INTO book_deltas ({', '.join(COLS)}) VALUES ({', '.join('?' * len(COLS))})"
    start = time.perf_counter()
    for i in range(0, n, RAW_BATCH):
        con.execute("BEGIN")
        con.executemany(sql, rows[i : i + RAW_BATCH])
        con.execute("COMMIT")
    elapsed = time.perf_counter() - start
    stored = con.execute("SELECT COUNT(*) FROM book_deltas").fetchone()[0]
    assert stored == n, stored
    con.close()
    return n / elapsed


async def pg_limit(n: int, url: str, schema: str) -> float:
    db = DbConfig(url=url, schema=schema)
    engine = make_engine(db)
    await upgrade(engine, db)  # the same table, keys and types the writer uses
    await engine.dispose()
    conn = await asyncpg.connect(url.replace("+asyncpg", ""), server_settings={"search_path": schema})
    try:
        await integer_timestamps(conn)  # the writer's codec: no datetime object per value here either
        # The row-per-delta table of the baseline (0006), beside the schema's own stream_offsets.
        await conn.execute(
            "CREATE TABLE raw_deltas (conn bigint NOT NULL, sid bigint NOT NULL, xseq bigint NOT NULL, "
            "ticker text NOT NULL, side text NOT NULL, price bigint NOT NULL, delta bigint NOT NULL, "
            "ts timestamptz NOT NULL, recv timestamptz NOT NULL, PRIMARY KEY (conn, sid, xseq))"
        )
        await conn.execute("CREATE TEMP TABLE stage (LIKE raw_deltas) ON COMMIT DELETE ROWS")
        rows = rows_for(n)
        cols = ", ".join(f'"{c}"' for c in COLS)
        insert = f"INSERT INTO raw_deltas ({cols}) SELECT {cols} FROM stage ON CONFLICT DO NOTHING"
        # The writer must also move its stream position in each batch's transaction (exactly
        # once); the limit does the same, with the writer's own statement.
        offsets = Sql(True).offsets()
        seq_i, recv_i = COLS.index("xseq"), COLS.index("recv")
        start = time.perf_counter()
        for i in range(0, n, RAW_BATCH):
            part = rows[i : i + RAW_BATCH]
            async with conn.transaction():
                await conn.copy_records_to_table("stage", records=part, columns=list(COLS))
                await conn.execute(insert)
                await conn.execute(
                    offsets, "raw", 1, "delta", part[-1][seq_i], part[-1][recv_i], part[-1][recv_i]
                )
        elapsed = time.perf_counter() - start
        assert await conn.fetchval("SELECT COUNT(*) FROM raw_deltas") == n
    finally:
        await conn.close()
    return n / elapsed


# ---- kxfeed: bus -> writer process -> database ----------------------------------------------


def produce(xsub: str, journal_dir: str, n: int, frame: int, go: Any, started: Any, sent: Any) -> None:
    """Producer process: publish n deltas, ``frame`` consecutive ones per market (one bus frame)."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    jw = JournalWriter(Path(journal_dir) / "bench", fsync="never")
    pub = Publisher(ctx, xsub, "bench", journal=jw)
    msgs = deltas(n, sid=3)
    # group into runs of one market so a publish_many call sends frames of ``frame`` messages
    msgs.sort(key=lambda m: (m.xseq - 1) // (frame * 50) * 50 + m.xseq % 50)
    assert pub.wait_for_subscriber_sync("delta.", 30)
    go.wait()
    started.value = time.time()
    for i in range(0, n, frame * 50):
        pub.publish_many(msgs[i : i + frame * 50])
    sent.value = time.time()
    pub.close(5000)
    jw.close()
    ctx.destroy(0)


def kxfeed_rate(
    n: int, frame: int, url: str, schema: str, directory: Path, batch_rows: int, root: Path = ROOT
) -> tuple[float, float]:
    """(rows/s from first publish to last commit, bytes per stored delta) of the writer of the
    kxfeed tree at ``root``."""
    # ipc endpoints in the run's directory and metrics on port 0: nothing is picked free and
    # bound later (another process could take the port in between).
    xsub, xpub = f"ipc://{directory}/bus-xsub", f"ipc://{directory}/bus-xpub"
    control = f"ipc://{directory}/writer-ctl"
    env = {
        **os.environ,
        "KXFEED_DATA_DIR": str(directory),
        "KXFEED_BUS_XSUB": xsub,
        "KXFEED_BUS_XPUB": xpub,
        "KXFEED_JOURNAL_DIR": str(directory / "journal"),
        "KXFEED_DB_URL": url,
        "KXFEED_DB_SCHEMA": schema,
        "KXFEED_WRITER_CONTROL": control,
        "KXFEED_WRITER_METRICS_PORT": "0",
        "KXFEED_WRITER_BATCH_ROWS": str(batch_rows),
        "KXFEED_LOG_LEVEL": "WARNING",
    }
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    proxy = Proxy(ctx, xsub, xpub, 2_000_000)
    proxy.start()
    writer = subprocess.Popen(
        [sys.executable, "-m", "services.cli.main", "worker", "writer"], cwd=root, env=env
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if request(control, Stats(), timeout_s=1.0).get("ready"):
                    break
            except Exception:
                pass
            if time.monotonic() > deadline or writer.poll() is not None:
                raise RuntimeError("writer did not become ready")
            time.sleep(0.1)
        go = mp.Event()
        started, sent = mp.Value("d", 0.0), mp.Value("d", 0.0)
        producer = mp.Process(
            target=produce, args=(xsub, str(directory / "journal"), n, frame, go, started, sent)
        )
        producer.start()
        time.sleep(1.0)  # let the producer connect and see the writer's subscription
        go.set()
        while True:
            rows = request(control, Stats(), timeout_s=5.0)["rows"]
            if rows >= n:
                done = time.time()
                break
            if time.monotonic() > deadline + 120:
                raise RuntimeError(f"only {rows} of {n} rows stored")
            time.sleep(0.02)
        producer.join(30)
        rate = n / (done - started.value)
        # The writer cannot commit the last row before it is published: the producer's own
        # rate (journal, encode, send) caps this run's figure.
        print(
            f"            run at {root.name}: {rate:,.0f} rows/s; the producer alone published them at "
            f"{n / (sent.value - started.value):,.0f}/s (the run's ceiling)"
        )
        per_delta = asyncio.run(bytes_per_delta(url, schema, n))
    finally:
        writer.terminate()
        writer.wait(30)
        proxy.stop()
        ctx.destroy(0)
    return rate, per_delta


async def bytes_per_delta(url: str, schema: str, n: int) -> float:
    from sqlalchemy import text

    engine = make_engine(DbConfig(url=url, schema=schema))
    async with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            # Day partitions (and their TOAST and indexes) of the partitioned table, or the table.
            size = (
                await conn.execute(
                    text(
                        "SELECT COALESCE((SELECT SUM(pg_total_relation_size(relid)) "
                        "FROM pg_partition_tree('book_deltas'::regclass)), "
                        "pg_total_relation_size('book_deltas'))"
                    )
                )
            ).scalar_one()
        else:
            size = (
                await conn.execute(
                    text(
                        "SELECT SUM(pgsize) FROM dbstat WHERE name IN "
                        "(SELECT name FROM sqlite_master WHERE tbl_name = 'book_deltas')"
                    )
                )
            ).scalar_one()
    await engine.dispose()
    return float(size) / n


def report(name: str, rate: float, limit: float, limit_name: str, per: float, target: str, ok: bool) -> None:
    print(
        f"{name:<11} kxfeed {rate:>9,.0f} rows/s | limit ({limit_name}) {limit:>9,.0f} rows/s"
        f" = {rate / limit:4.0%} | {per:5.1f} bytes/delta | target {target}: {'PASS' if ok else 'FAIL'}"
    )


def baseline_tree(rev: str | None, directory: Path) -> tuple[str, Path]:
    """The kxfeed tree of ``rev`` (default: the parent of the commit adding migration 0007),
    exported into ``directory``: (its short hash, its root)."""
    git = ["git", "-C", str(ROOT)]
    if rev is None:
        added = subprocess.run(
            [*git, "log", "--format=%H", "--diff-filter=A", "-1", "--", str(PACKED_MIGRATION)],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        if not added:
            raise RuntimeError("no commit adds migration 0007: pass --baseline REV")
        rev = f"{added}^"
    short = subprocess.run(
        [*git, "rev-parse", "--short", rev], capture_output=True, text=True, check=True
    ).stdout.strip()
    root = directory / f"baseline-{short}"
    root.mkdir()
    archive = subprocess.run([*git, "archive", "--format=tar", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    return short, root


def hourly_stream(seconds: int, markets: int = HOUR_MARKETS) -> list[Any]:
    """``markets`` markets x 1 update/s for ``seconds``: one delta every 1/markets s (one
    subscription), stamped as one publisher's stream."""
    step_ns = 1_000_000_000 // markets
    out = []
    for i, m in enumerate(deltas(seconds * markets, markets=markets, sid=5)):
        recv = m.ts_recv - i * 1_000 + i * step_ns  # deltas() spaces them 1 us apart
        out.append(msgspec.structs.replace(m, ts_recv=recv, ts_exch=recv // 1_000_000))
    return stamp(out)


def hour_bytes(url: str, schema: str, seconds: int) -> float:
    """Bytes per delta of the hourly load stored as the writer batches it at that rate: a batch
    every batch_ms holds markets x batch_ms / 1000 deltas."""
    msgs = hourly_stream(seconds)
    per_batch = max(1, HOUR_MARKETS * WriterConfig().batch_ms // 1000)
    db = DbConfig(url=url, schema=schema)
    asyncio.run(store_messages(db, msgs, batch=per_batch))
    return asyncio.run(bytes_per_delta(url, schema, len(msgs)))


def alternate(
    name: str, repeat: int, run: Any, old_root: Path
) -> tuple[tuple[float, float], tuple[float, float]]:
    """The baseline and the current writer run alternately ``repeat`` times each (the shared
    machine's load moves between runs): ((best baseline rate, its bytes), (best rate, bytes))."""
    old: list[tuple[float, float]] = []
    new: list[tuple[float, float]] = []
    for i in range(repeat):
        old.append(run(f"old-{i}", old_root))
        new.append(run(f"new-{i}", ROOT))
    print(
        f"{name:<11} runs, rows/s: baseline {', '.join(f'{r:,.0f}' for r, _ in old)}; "
        f"packed {', '.join(f'{r:,.0f}' for r, _ in new)} (best of each below)"
    )
    return max(old), max(new)


def limit_runs(name: str, limits: list[float]) -> float:
    """The best of the raw limit's runs: measured beside each writer run, as the writers' best
    is taken (a limit measured once, at another moment's load, made the ratio swing 17-123%)."""
    print(f"{name:<11} limit runs, rows/s: {', '.join(f'{r:,.0f}' for r in limits)} (best below)")
    return max(limits)


def share_line(name: str, rate: float, limit: float) -> bool:
    """Issue 21's line: the writer's rate over its raw limit measured in this run."""
    ok = rate >= LIMIT_SHARE * limit
    print(
        f"{name:<11} kxfeed / limit = {rate / limit:4.0%} ({rate:,.0f} / {limit:,.0f} rows/s; "
        f"target >= {LIMIT_SHARE:.0%}, issue 21): {'MET' if ok else 'NOT MET'}"
    )
    return ok


def packed_line(
    name: str, per: float, old_per: float, rate: float, old_rate: float, target: int, ok: bool
) -> None:
    print(
        f"{name:<11} packed {per:5.1f} bytes/delta (baseline {old_per:5.1f}), rate {rate / old_rate:4.0%} "
        f"of the baseline's | target <= {target} bytes/delta at >= 100% of its rate: "
        f"{'PASS' if ok else 'FAIL'}"
    )


def hour_line(name: str, per: float, old_per: float, rev: str) -> None:
    hour = HOUR_MARKETS * 3600
    print(
        f"{name:<11} 100 markets x 1 update/s: {per:5.1f} bytes/delta = {per * hour / 1e6:6.1f} MB/hour, "
        f"{per * hour * 24 / 1e9:5.2f} GB/day | baseline {rev} (a row per delta, whatever the batching) "
        f"{old_per:5.1f} bytes/delta = {old_per * hour / 1e6:6.1f} MB/hour"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=200_000, help="deltas per run (default 200,000)")
    p.add_argument("--frame", type=int, default=20, help="messages per bus frame (default 20)")
    p.add_argument("--pg", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test", help="PostgreSQL URL")
    p.add_argument("--no-pg", action="store_true", help="skip PostgreSQL")
    p.add_argument(
        "--batch-rows",
        type=int,
        default=WriterConfig().batch_rows,
        help="writer batch size (default: its default)",
    )
    p.add_argument(
        "--baseline", default=None, help="the kxfeed revision to compare with (default: before 0007)"
    )
    p.add_argument(
        "--hour-sample-s",
        type=int,
        default=300,
        help="seconds of the hourly load stored to measure it (default 300)",
    )
    p.add_argument("--repeat", type=int, default=2, help="runs of each writer, alternating (default 2)")
    args = p.parse_args()
    n = args.rows
    print(
        f"writer bench: {n:,} book deltas, {args.frame} per bus frame, writer batches of "
        f"{args.batch_rows:,} rows; limits: {RAW_BATCH:,}-row batches into the row-per-delta table"
    )
    ok = True
    with tempfile.TemporaryDirectory(prefix="kxbench-") as tmp:
        d = Path(tmp)
        rev, old_root = baseline_tree(args.baseline, d)
        print(f"baseline: kxfeed at {rev} (its writer process, the same stream)")
        lite_limits: list[float] = []

        def sqlite_run(name: str, root: Path) -> tuple[float, float]:
            sub = d / f"sqlite-{name}"
            sub.mkdir()
            if root == ROOT:  # the limit right before each run it is compared with
                lite_limits.append(sqlite_limit(n, sub))
            return kxfeed_rate(
                n, args.frame, f"sqlite+aiosqlite:///{sub / 'kx.db'}", "", sub, args.batch_rows, root
            )

        (old_rate, old_per), (rate, per) = alternate("SQLite", args.repeat, sqlite_run, old_root)
        limit = limit_runs("SQLite", lite_limits)
        report("SQLite was", old_rate, limit, "sqlite3 executemany OR IGNORE", old_per, "(baseline)", True)
        good = rate >= 100_000
        report("SQLite", rate, limit, "sqlite3 executemany OR IGNORE", per, ">= 100,000 rows/s", good)
        ok &= share_line("SQLite", rate, limit)
        fit = per <= SQLITE_BYTES and rate >= old_rate
        packed_line("SQLite", per, old_per, rate, old_rate, SQLITE_BYTES, fit)
        ok &= good and fit
        (d / "sqlite-hour").mkdir()
        hour_url = f"sqlite+aiosqlite:///{d / 'sqlite-hour' / 'kx.db'}"
        hour_line("SQLite", hour_bytes(hour_url, "", args.hour_sample_s), old_per, rev)
        if not args.no_pg:
            schema_hour = f"kxbench_hour_{uuid.uuid4().hex[:8]}"
            schemas = [schema_hour]
            pg_limits: list[float] = []
            try:

                def pg_run(name: str, root: Path) -> tuple[float, float]:
                    sub = d / f"pg-{name}"
                    sub.mkdir()
                    if root == ROOT:  # the limit right before each run it is compared with
                        schemas.append(f"kxbench_raw_{uuid.uuid4().hex[:8]}")
                        pg_limits.append(asyncio.run(pg_limit(n, args.pg, schemas[-1])))
                    schema = f"kxbench_{name.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
                    schemas.append(schema)
                    return kxfeed_rate(n, args.frame, args.pg, schema, sub, args.batch_rows, root)

                (old_rate, old_per), (rate, per) = alternate("PostgreSQL", args.repeat, pg_run, old_root)
                limit = limit_runs("PostgreSQL", pg_limits)
                hour_per = hour_bytes(args.pg, schema_hour, args.hour_sample_s)
            finally:
                for schema in schemas:
                    asyncio.run(drop_schema(args.pg, schema))
            report("PG was", old_rate, limit, "asyncpg COPY+ON CONFLICT", old_per, "(baseline)", True)
            good = rate >= 100_000 and rate >= 0.65 * limit
            target = ">= 100,000 rows/s and >= 65%"
            report("PostgreSQL", rate, limit, "asyncpg COPY+ON CONFLICT", per, target, good)
            ok &= share_line("PostgreSQL", rate, limit)
            fit = per <= PG_BYTES and rate >= old_rate
            packed_line("PostgreSQL", per, old_per, rate, old_rate, PG_BYTES, fit)
            ok &= good and fit
            hour_line("PostgreSQL", hour_per, old_per, rev)
    print(f"machine: {os.cpu_count()} cores, shared; load average {os.getloadavg()[0]:.2f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
