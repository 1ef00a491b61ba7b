"""Retention against a real SQLite file and a real PostgreSQL: a week of data written through
the writer's store path keeps exactly what its retention says; deletes go in bounded
batches; a partitioned PostgreSQL table loses whole old partitions only; a dry run changes
nothing; ``kxfeed db prune`` says what it did and fails clearly on a bad database."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.cli.main import main as cli_main
from services.writer.batches import Store
from services.writer.core import WriterCore
from services.writer.prune import Pruner
from services.writer.rows import MAPPERS
from shared.config import DbConfig, RetentionConfig
from shared.messages import BookDelta, BookSnapshot, Gap, Message, Ticker, Trade
from shared.store import history, retention
from shared.store.engine import make_engine
from shared.store.schema import APPEND, metadata, table_hours
from shared.store.types import datetime_to_us
from tests.integration.test_writer_db import opened
from tests.support.config import make_config, write_config
from tests.support.pg import DB_PARAMS, drop_schema, fresh_db
from tests.support.synth import expected_tables, read_tables, stamp

BASE = datetime(2026, 11, 1, tzinfo=UTC)
DAY_S = 86400
WEEK_S = 7 * DAY_S
MARKETS = ["KXWEEK-26NOV01-A", "KXWEEK-26NOV01-B", "KXWEEK-26NOV01-C"]
#: Where the retention is measured from: half a day after the week's last row.
NOW = BASE + timedelta(days=7, hours=12)
PRUNED = ("book_deltas", "book_snapshots", "ticks", "trades")


@pytest.fixture(params=DB_PARAMS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DbConfig]:
    yield from fresh_db(request, tmp_path, prefix="kxret")


def week(step_s: int = 5, *, start_s: int = 0, end_s: int = WEEK_S) -> list[Message]:
    """A week of one subscription's book (a delta every ``step_s``, a WS snapshot every hour),
    a trade and a ticker a minute, a gap and its recovery every 6 h, at synthetic times."""
    out: list[Message] = []
    xseq = 0
    base_s = int(BASE.timestamp())
    for i, t in enumerate(range(start_s, end_s, step_s)):
        ms = (base_s + t) * 1000
        recv = ms * 1_000_000 + 20_000_000
        ticker = MARKETS[i % len(MARKETS)]
        xseq += 1
        if t % 3600 == 0:
            out.append(
                BookSnapshot(
                    ticker=ticker, market_id="m", conn=1, sid=1, xseq=xseq, yes=[(4000, 100 + i % 50)],
                    no=[(5500, 700)], ts_exch=ms, ts_recv=recv,
                )
            )  # fmt: skip
            xseq += 1
        out.append(
            BookDelta(
                ticker=ticker, market_id="m", conn=1, sid=1, xseq=xseq, side="yes" if i % 2 else "no",
                price=100 * (1 + i % 97), delta=(i % 13 - 6) * 100 or 100, ts_exch=ms, ts_recv=recv,
            )
        )  # fmt: skip
        if t % 60 == 0:
            yes = 100 * (1 + i % 99)
            out.append(
                Trade(
                    trade_id=f"wk-{t}", ticker=ticker, yes_price=yes, no_price=10_000 - yes,
                    count=100 + i % 900, taker_side="yes", ts_exch=ms, ts_recv=recv,
                )
            )  # fmt: skip
            out.append(
                Ticker(
                    ticker=ticker, market_id="m", price=yes, yes_bid=4000, yes_ask=4200, yes_bid_size=1000,
                    yes_ask_size=500, last_trade_size=100, volume=i, open_interest=77, dollar_volume=i,
                    dollar_open_interest=5, ts_exch=ms, ts_recv=recv,
                )
            )  # fmt: skip
        if t % (6 * 3600) == 0:
            for status in ("open", "recovered"):
                out.append(
                    Gap(
                        conn=1, sid=1, expected=xseq + 1, received=xseq + 3, tickers=[ticker],
                        reason="seq jump", status=status, detected_ms=ms, ts_exch=ms, ts_recv=recv,
                    )
                )  # fmt: skip
    return stamp(out, pub="week")


async def store_all(store: Store, msgs: list[Message]) -> None:
    """Through the writer's own path: its core batches the messages, its store writes them."""
    core = WriterCore({}, {}, lambda pub: True, max_buffer=10**7, stored=MAPPERS.__contains__)
    core.offer(msgs)
    while (batch := core.take(5000)) is not None:
        await store.write(batch, datetime_to_us(NOW))
        core.commit(batch)


def ts_index(table: str) -> int:
    return APPEND[table].columns.index("ts")


async def stored(engine: AsyncEngine, tables: tuple[str, ...] | dict[str, object] = APPEND) -> dict[str, set]:
    """The rows of ``tables`` as :func:`expected_tables` has them; deltas (stored packed in
    runs or a row each, as the schema says) read through the history reader."""
    out = await read_tables(engine, [t for t in tables if t != "book_deltas"])
    if "book_deltas" in tables:
        names = history.KINDS["deltas"].names
        order = [names.index(c) for c in APPEND["book_deltas"].columns]
        rows: set = set()
        async for part in history.batches(engine, history.Query("deltas")):
            rows.update(tuple(r[i] for i in order) for r in part)
        out["book_deltas"] = rows
    return out


async def delta_runs(engine: AsyncEngine) -> list[tuple[int, int, int, int, int]] | None:
    """(conn, sid, first xseq, last xseq, newest ts) of each stored run when deltas are packed."""
    t = metadata.tables["book_deltas"]
    if "ts_hi" not in t.c:
        return None
    async with engine.connect() as conn:
        rows = await conn.execute(select(t.c.conn, t.c.sid, t.c.first_xseq, t.c.last_xseq, t.c.ts_hi))
        return [(a, b, c, d, datetime_to_us(e)) for a, b, c, d, e in rows]


def kept_deltas(want: set, runs: list[tuple[int, int, int, int, int]] | None, cutoff: int) -> set:
    """The deltas a prune at ``cutoff`` keeps: those at or after it, and in a packed schema
    every delta of a run whose newest delta is (a run goes whole or not at all)."""
    i = ts_index("book_deltas")
    if runs is None:
        return {r for r in want if r[i] >= cutoff}
    live = [(c, s, a, b) for c, s, a, b, hi in runs if hi >= cutoff]
    return {
        r
        for r in want
        if r[i] >= cutoff or any(r[0] == c and r[1] == s and a <= r[2] <= b for c, s, a, b in live)
    }


async def hour_totals(engine: AsyncEngine) -> dict[str, int]:
    h = table_hours.c
    async with engine.connect() as conn:
        rows = await conn.execute(select(h.table_name, func.sum(h.rows)).group_by(h.table_name))
        return {name: int(n) for name, n in rows}


def pruned_metric(table: str, name: str = "kxfeed_writer_pruned_rows_total") -> float:
    return REGISTRY.get_sample_value(name, {"table": table}) or 0.0


WEEK_RETENTION = RetentionConfig(deltas="2d", snapshots="3d", tickers="2d", trades="4d")


def test_a_week_of_data_stays_within_its_retention(db: DbConfig, caplog: pytest.LogCaptureFixture) -> None:
    """A week written fast with synthetic times, then the writer's prune pass: every row older
    than its kind's retention is gone, every newer one is there, gap records (kept forever)
    all stay, and the rows counted per hour (``db stats``) are the rows left."""
    msgs = week()
    db = msgspec.structs.replace(db, retention=WEEK_RETENTION, prune_batch_rows=5000)
    log = logging.getLogger("test.retention.week")
    before = {t: pruned_metric(t) for t in PRUNED}

    async def go() -> tuple[
        list[retention.Pruned], list[retention.Pruned], dict[str, set], dict[str, int], Any
    ]:
        async with opened(db) as (engine, store):
            await store_all(store, msgs)
            runs = await delta_runs(engine)
            pruner = Pruner(engine, db, log, clock=lambda: NOW)
            targets = retention.targets(db.retention)
            first = await pruner.pass_once(targets)
            again = await pruner.pass_once(targets)
            return first, again, await stored(engine), await hour_totals(engine), runs

    with caplog.at_level(logging.INFO, logger=log.name):
        first, again, got, hours, runs = asyncio.run(go())
    want = expected_tables(msgs)
    keep = {"book_deltas": 2, "book_snapshots": 3, "ticks": 2, "trades": 4}
    by_table = {r.table: r for r in first}
    assert set(by_table) == set(keep)
    for table, days in keep.items():
        cutoff = datetime_to_us(NOW - timedelta(days=days))
        i = ts_index(table)
        kept = {r for r in want[table] if r[i] >= cutoff}
        if table == "book_deltas":
            kept = kept_deltas(want[table], runs, cutoff)
        assert 0 < len(kept) < len(want[table]), table  # the week straddles the cutoff
        assert got[table] == kept, table
        assert by_table[table].rows == len(want[table]) - len(kept) and by_table[table].error is None
        assert pruned_metric(table) - before[table] == by_table[table].rows
    assert got["gaps"] == want["gaps"] and len(want["gaps"]) == 2 * 28
    assert hours == {t: len(rows) for t, rows in got.items() if rows}
    assert [(r.rows, r.partitions, r.error) for r in again] == [(0, [], None)] * len(keep)
    passes = [r for r in caplog.records if r.name == log.name and r.getMessage() == "prune pass done"]
    assert len(passes) == 2
    assert passes[0].ctx["rows"] == {t: r.rows for t, r in by_table.items()}  # type: ignore[attr-defined]


def test_deletes_go_in_bounded_batches_and_never_take_a_newer_row(db: DbConfig) -> None:
    # Trades are keyed by trade_id: old and new rows interleave in key order, so each batch's
    # key range holds both kinds and only the old may go.
    msgs = week(60, end_s=2 * DAY_S)  # 2,880 trades over two days
    target = retention.targets(RetentionConfig(trades="1d"))
    batches: list[int] = []

    async def go() -> tuple[list[retention.Pruned], set]:
        async with opened(db) as (engine, store):
            await store_all(store, msgs)
            res = await retention.prune(
                engine, target, BASE + timedelta(days=2), batch_rows=100,
                progress=lambda table, n, part: batches.append(n),
            )  # fmt: skip
            return res, (await read_tables(engine, ["trades"]))["trades"]

    (res,), got = asyncio.run(go())
    want = expected_tables(msgs)["trades"]
    cutoff = datetime_to_us(BASE + timedelta(days=1))
    i = ts_index("trades")
    assert got == {r for r in want if r[i] >= cutoff} and len(got) == 1440
    assert res.rows == 1440 == sum(batches)
    assert max(batches) <= 100 and len(batches) == 15  # 14 full batches, then the last 40


@pytest.mark.postgres
def test_a_partitioned_postgres_table_loses_old_partitions_whole_and_no_newer_row(pg_url: str) -> None:
    """trades partitioned by day (created here): the partitions whose last day is past the
    retention are dropped whole; in the one holding the cutoff and in the default partition
    (never dropped) only the rows past it go; the dry run names exactly the partitions the
    prune then drops and counts the rows it then removes; the rows counted per hour are the
    rows left."""
    schema = f"kxret_part_{uuid.uuid4().hex[:12]}"
    db = DbConfig(url=pg_url, schema=schema, retention=RetentionConfig(trades="2d"))
    three_days_before = int((BASE - timedelta(days=3)).timestamp())
    early = [
        Trade(trade_id=f"early-{n}", ticker=MARKETS[0], yes_price=100, no_price=9900, count=100,
              taker_side="no", ts_exch=three_days_before * 1000 + n, ts_recv=three_days_before * 10**9 + n)
        for n in range(1, 4)
    ]  # fmt: skip
    msgs = stamp(early, pub="early") + week(30)

    async def go() -> tuple[retention.Plan, retention.Pruned, set, list[str], dict[str, int]]:
        async with opened(db) as (engine, store):
            async with engine.begin() as conn:
                await conn.execute(text("DROP TABLE trades"))
                await conn.execute(
                    text(
                        "CREATE TABLE trades (trade_id text NOT NULL, ticker text NOT NULL, "
                        "yes_price bigint NOT NULL, no_price bigint NOT NULL, count bigint NOT NULL, "
                        "taker_side text NOT NULL, is_block_trade boolean NOT NULL, ts timestamptz NOT NULL, "
                        "recv timestamptz NOT NULL, source text NOT NULL DEFAULT 'ws', "
                        "PRIMARY KEY (trade_id, ts)) PARTITION BY RANGE (ts)"
                    )
                )
                for d in range(8):
                    lo, hi = BASE + timedelta(days=d), BASE + timedelta(days=d + 1)
                    await conn.execute(
                        text(
                            f"CREATE TABLE trades_d{d} PARTITION OF trades "
                            f"FOR VALUES FROM ('{lo.isoformat()}') TO ('{hi.isoformat()}')"
                        )
                    )
                await conn.execute(text("CREATE TABLE trades_default PARTITION OF trades DEFAULT"))
            await store_all(store, msgs)
            targets = retention.targets(db.retention)
            (plan,) = await retention.plan(engine, targets, NOW)
            (pruned,) = await retention.prune(engine, targets, NOW, batch_rows=1000)
            got = (await read_tables(engine, ["trades"]))["trades"]
            async with engine.connect() as conn:
                left = await conn.execute(
                    text(
                        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                        "WHERE i.inhparent = to_regclass('trades') ORDER BY 1"
                    )
                )
                names = list(left.scalars().all())
            return plan, pruned, got, names, await hour_totals(engine)

    try:
        plan, pruned, got, left, hours = asyncio.run(go())
    finally:
        asyncio.run(drop_schema(pg_url, schema))
    want = expected_tables(msgs)["trades"]
    assert plan.error is None and pruned.error is None, (plan.error, pruned.error)
    i = ts_index("trades")
    # cutoff = day 5 12:00: days 0..4 end at or before it and go whole; what is older than the
    # cutoff in day 5 and in the default partition goes row by row; nothing newer goes.
    cutoff = datetime_to_us(NOW - timedelta(days=2))
    assert got == {r for r in want if r[i] >= cutoff}
    assert any(r[i] < datetime_to_us(BASE) for r in want)  # the default partition had old rows
    dropped = [f"{schema}.trades_d{d}" for d in range(5)]
    assert pruned.partitions == dropped == plan.partitions and pruned.error is None
    assert pruned.rows == plan.rows == len(want) - len(got)
    assert left == ["trades_d5", "trades_d6", "trades_d7", "trades_default"]
    assert plan.oldest_kept is not None and datetime_to_us(plan.oldest_kept) == min(r[i] for r in got)
    assert hours["trades"] == len(got)


class Cli:
    def __init__(self, capsys: pytest.CaptureFixture[str], path: Path) -> None:
        self.capsys = capsys
        self.path = path

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        self.capsys.readouterr()
        code = cli_main(["db", "prune", *args, "--config", str(self.path)])
        out, err = self.capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)


def test_cli_dry_run_changes_nothing_then_prune_removes_what_it_said(
    db: DbConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    msgs = week(60, end_s=3 * DAY_S)
    base = BASE + timedelta(days=3)  # the CLI measures from now: the data is shifted to end now
    shift_ms = int((datetime.now(UTC) - base).total_seconds()) * 1000
    moved = [
        msgspec.structs.replace(m, ts_exch=m.ts_exch + shift_ms, ts_recv=m.ts_recv + shift_ms * 10**6)  # type: ignore[attr-defined]
        for m in msgs
    ]
    db = msgspec.structs.replace(db, retention=RetentionConfig(deltas="1d", trades="2d", tickers="36h"))
    cfg = make_config(tmp_path, db=msgspec.to_builtins(db))
    cli = Cli(capsys, write_config(cfg, tmp_path / "kxfeed.toml"))

    async def write() -> None:
        async with opened(db) as (_, store):
            await store_all(store, moved)

    async def read() -> dict[str, set]:
        engine = make_engine(db)
        try:
            return await stored(engine)
        finally:
            await engine.dispose()

    asyncio.run(write())
    before = asyncio.run(read())
    keep = {"book_deltas": timedelta(days=1), "trades": timedelta(days=2), "ticks": timedelta(hours=36)}

    def older(table: str, than: datetime) -> int:
        i = ts_index(table)
        return sum(1 for r in before[table] if r[i] < datetime_to_us(than))

    # The CLI measures from its own now, somewhere between these two.
    start = datetime.now(UTC)
    dry = cli("--dry-run", "--json")
    end = datetime.now(UTC)
    assert dry.returncode == 0, dry.stderr
    planned = {r["table"]: r for r in map(json.loads, dry.stdout.splitlines())}
    assert asyncio.run(read()) == before
    assert set(planned) == set(keep)
    assert {t: r["keep"] for t, r in planned.items()} == {"book_deltas": "1d", "trades": "2d", "ticks": "36h"}
    # Packed deltas go a run at a time, only when the run's newest delta is past: maybe fewer.
    packed = "ts_hi" in metadata.tables["book_deltas"].c
    for table, r in planned.items():
        least = 0 if packed and table == "book_deltas" else older(table, start - keep[table])
        assert least <= r["rows"] <= older(table, end - keep[table])
        # Only PostgreSQL's book_deltas is partitioned (by day): its old days go whole.
        parted = table == "book_deltas" and db.url.startswith("postgresql")
        assert 0 < r["rows"] < len(before[table]) and r["error"] is None
        assert parted or r["partitions"] == [], r
    table_view = cli("--dry-run")
    assert table_view.returncode == 0 and "would go" in table_view.stdout
    assert "kept forever: snapshots, lifecycle, gaps" in table_view.stdout
    start = datetime.now(UTC)
    done = cli("--json")
    end = datetime.now(UTC)
    assert done.returncode == 0, done.stderr
    removed = {r["table"]: r["rows"] for r in map(json.loads, done.stdout.splitlines())}
    after = asyncio.run(read())
    for table, n in removed.items():
        i = ts_index(table)
        assert len(before[table]) - len(after[table]) == n
        if not (packed and table == "book_deltas"):
            assert all(r[i] >= datetime_to_us(start - keep[table]) for r in after[table])
        assert {r for r in before[table] if r[i] >= datetime_to_us(end - keep[table])} <= after[table]
    assert after["book_snapshots"] == before["book_snapshots"] and after["gaps"] == before["gaps"]


def test_cli_says_what_is_wrong_with_the_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def run(url: str, *args: str) -> subprocess.CompletedProcess[str]:
        cfg = make_config(tmp_path, db={"url": url, "retention": {"deltas": "30d"}})
        return Cli(capsys, write_config(cfg, tmp_path / "kxfeed.toml"))(*args)

    missing = run(f"sqlite+aiosqlite:///{tmp_path / 'nope.db'}", "--dry-run")
    assert missing.returncode == 2 and "no database at" in missing.stderr
    assert not (tmp_path / "nope.db").exists()
    unsupported = run("mysql://kx:secret@db/kx")
    assert unsupported.returncode == 2 and "unsupported database" in unsupported.stderr
    assert "secret" not in unsupported.stderr
    refused = run("postgresql+asyncpg://kx:secret@127.0.0.1:1/kx", "--dry-run")
    assert (
        refused.returncode == 2 and "cannot open postgresql+asyncpg://kx:***@127.0.0.1:1/kx" in refused.stderr
    )
    assert "secret" not in refused.stderr
    empty = tmp_path / "empty.db"
    empty.touch()
    bare = run(f"sqlite+aiosqlite:///{empty}", "--dry-run")
    assert bare.returncode == 2 and "no kxfeed schema" in bare.stderr
    with pytest.raises(SystemExit) as help_exit:
        cli_main(["db", "prune", "--help"])
    assert help_exit.value.code == 0
    shown = capsys.readouterr().out
    assert "--dry-run" in shown and 'retention = { deltas = "30d"' in shown and "forever" in shown


def test_a_failing_prune_is_counted_and_said_once_and_does_not_raise(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A database without kxfeed's tables: every table's prune fails; the pass returns.
    db = DbConfig(
        url=f"sqlite+aiosqlite:///{tmp_path / 'bare.db'}", retention=RetentionConfig(deltas="1d", trades="1d")
    )
    log = logging.getLogger("test.retention.fail")
    before = {t: pruned_metric(t, "kxfeed_writer_prune_errors_total") for t in ("book_deltas", "trades")}

    async def go() -> list[retention.Pruned]:
        engine = make_engine(db)
        try:
            return await Pruner(engine, db, log, clock=lambda: NOW).pass_once(retention.targets(db.retention))
        finally:
            await engine.dispose()

    with caplog.at_level(logging.INFO, logger=log.name):
        res = asyncio.run(go())
    assert [r.table for r in res] == ["book_deltas", "trades"] and all(
        "no such table" in (r.error or "") for r in res
    )
    for t, n in before.items():
        assert pruned_metric(t, "kxfeed_writer_prune_errors_total") == n + 1
    said = [r for r in caplog.records if r.name == log.name]
    assert [r.getMessage() for r in said] == ["prune pass: some tables failed; retried next pass"]
    assert set(said[0].ctx["errors"]) == {"book_deltas", "trades"}  # type: ignore[attr-defined]
