"""Writer throughput: rows/s stored from the bus into PostgreSQL and SQLite, and in the same
run the raw libraries on the same rows and unique keys (the limits).

  .venv/bin/python bench/writer.py [--rows N] [--frame M] [--pg URL] [--no-pg]

kxfeed path: a producer process publishes N book deltas (journaled, M per bus frame) to an
in-process bus proxy; the real writer process (``kxfeed worker writer``, default batching)
stores them; the clock runs from the first publish to the last row committed.
Limits: asyncpg COPY into a temp staging table + INSERT ... ON CONFLICT DO NOTHING, and
sqlite3 executemany with INSERT OR IGNORE, 10,000-row batches, one transaction each, into
the same book_deltas table (same primary key), rows prepared beforehand. The PostgreSQL
limit also upserts its stream position (stream_offsets) in each transaction, as the writer
must for exactly-once.
Targets (issue 6): PostgreSQL >= 100,000 rows/s and >= 65% of its limit; SQLite >= 100,000
rows/s. Also prints bytes per stored delta (table + indexes).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
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
from tests.support.synth import deltas  # noqa: E402

RAW_BATCH = 10_000
COLS = APPEND["book_deltas"].columns


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


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
        await conn.execute("CREATE TEMP TABLE stage (LIKE book_deltas) ON COMMIT DELETE ROWS")
        rows = rows_for(n)
        cols = ", ".join(f'"{c}"' for c in COLS)
        insert = f"INSERT INTO book_deltas ({cols}) SELECT {cols} FROM stage ON CONFLICT DO NOTHING"
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
        assert await conn.fetchval("SELECT COUNT(*) FROM book_deltas") == n
    finally:
        await conn.close()
    return n / elapsed


# ---- kxfeed: bus -> writer process -> database ----------------------------------------------


def produce(xsub: str, journal_dir: str, n: int, frame: int, go: Any, started: Any) -> None:
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
    pub.close(5000)
    jw.close()
    ctx.destroy(0)


def kxfeed_rate(
    n: int, frame: int, url: str, schema: str, directory: Path, batch_rows: int
) -> tuple[float, float]:
    """(rows/s from first publish to last commit, bytes per stored delta)."""
    xsub, xpub = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    control = f"tcp://127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "KXFEED_DATA_DIR": str(directory),
        "KXFEED_BUS_XSUB": xsub,
        "KXFEED_BUS_XPUB": xpub,
        "KXFEED_JOURNAL_DIR": str(directory / "journal"),
        "KXFEED_DB_URL": url,
        "KXFEED_DB_SCHEMA": schema,
        "KXFEED_WRITER_CONTROL": control,
        "KXFEED_WRITER_METRICS_PORT": str(free_port()),
        "KXFEED_WRITER_BATCH_ROWS": str(batch_rows),
        "KXFEED_LOG_LEVEL": "WARNING",
    }
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    proxy = Proxy(ctx, xsub, xpub, 2_000_000)
    proxy.start()
    writer = subprocess.Popen(
        [sys.executable, "-m", "services.cli.main", "worker", "writer"], cwd=ROOT, env=env
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
        started = mp.Value("d", 0.0)
        producer = mp.Process(target=produce, args=(xsub, str(directory / "journal"), n, frame, go, started))
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
            size = (await conn.execute(text("SELECT pg_total_relation_size('book_deltas')"))).scalar_one()
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
    args = p.parse_args()
    n = args.rows
    print(
        f"writer bench: {n:,} book deltas, {args.frame} per bus frame, writer batches of "
        f"{args.batch_rows:,} rows; limits: {RAW_BATCH:,}-row batches"
    )
    ok = True
    with tempfile.TemporaryDirectory(prefix="kxbench-") as tmp:
        d = Path(tmp)
        limit = sqlite_limit(n, d)
        (d / "sqlite").mkdir()
        sqlite_url = f"sqlite+aiosqlite:///{d / 'sqlite' / 'kx.db'}"
        rate, per = kxfeed_rate(n, args.frame, sqlite_url, "", d / "sqlite", args.batch_rows)
        good = rate >= 100_000
        ok &= good
        report("SQLite", rate, limit, "sqlite3 executemany OR IGNORE", per, ">= 100,000 rows/s", good)
        if not args.no_pg:
            schema_raw, schema_kx = f"kxbench_raw_{uuid.uuid4().hex[:8]}", f"kxbench_{uuid.uuid4().hex[:8]}"
            try:
                limit = asyncio.run(pg_limit(n, args.pg, schema_raw))
                (d / "pg").mkdir()
                rate, per = kxfeed_rate(n, args.frame, args.pg, schema_kx, d / "pg", args.batch_rows)
            finally:
                asyncio.run(drop_schema(args.pg, schema_raw))
                asyncio.run(drop_schema(args.pg, schema_kx))
            good = rate >= 100_000 and rate >= 0.65 * limit
            ok &= good
            target = ">= 100,000 rows/s and >= 65%"
            report("PostgreSQL", rate, limit, "asyncpg COPY+ON CONFLICT", per, target, good)
    print(f"machine: {os.cpu_count()} cores, shared; load average {os.getloadavg()[0]:.2f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
