"""The writer's database layer against a real SQLite file and a real PostgreSQL:
migrations, batch writes (idempotent, atomic with positions), bad rows, state, queries, CLI."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import subprocess
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from prometheus_client import REGISTRY
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.cli.main import main as cli_main
from services.writer.batches import Store, open_store
from services.writer.core import Batch, WriterCore
from services.writer.errors import classify
from services.writer.metrics import count_batch
from services.writer.rows import HOUR_NS, MAPPERS
from shared.config import Config, DbConfig
from shared.log import BurstLog
from shared.messages import (
    BookDelta,
    BookSnapshot,
    Fill,
    Gap,
    MarketLifecycle,
    MarketPosition,
    Message,
    OrderGroupUpdate,
    PollSnapshot,
    Signal,
    Ticker,
    Trade,
    UserOrder,
    WorkerEvent,
)
from shared.store import deltaread
from shared.store.engine import ensure_schema, make_engine
from shared.store.migrate import SchemaTooNew, current_revision, head_revision, upgrade
from shared.store.schema import APPEND, PACKED, metadata, stream_offsets, table_hours
from tests.support.config import make_config, write_config
from tests.support.messages import book_delta
from tests.support.pg import DB_PARAMS, fresh_db
from tests.support.procs import kxfeed_cmd
from tests.support.synth import expected_tables, mixed, read_tables, stamp

T0 = 1_793_750_400_000_000_000  # ns, on an hour boundary
NOW_US = T0 // 1000 + 10**9


@pytest.fixture(params=DB_PARAMS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DbConfig]:
    yield from fresh_db(request, tmp_path)


def config_for(tmp_path: Path, db: DbConfig) -> tuple[Config, Path]:
    cfg = make_config(tmp_path, db=msgspec.to_builtins(db))
    return cfg, write_config(cfg, tmp_path / "kxfeed.toml")


class Cli:
    """``kxfeed db ...`` in this process (an interpreter start per call would dominate the test)."""

    def __init__(self, capsys: pytest.CaptureFixture[str], path: Path) -> None:
        self.capsys = capsys
        self.path = path

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        self.capsys.readouterr()
        code = cli_main(["db", *args, "--config", str(self.path)])
        out, err = self.capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)


# ---- migrations ---------------------------------------------------------------------------


def test_migration_empty_to_head_then_no_op_and_matches_the_schema(db: DbConfig) -> None:
    async def go() -> None:
        engine = make_engine(db)
        try:
            assert await current_revision(engine) is None
            assert await upgrade(engine, db) == (None, head_revision())
            assert await upgrade(engine, db) == (head_revision(), head_revision())
            async with engine.connect() as conn:
                diff = await conn.run_sync(
                    lambda c: compare_metadata(
                        MigrationContext.configure(c, opts={"compare_type": True}), metadata
                    )
                )
            assert diff == []
        finally:
            await engine.dispose()

    asyncio.run(go())


async def upgrade_from(engine: AsyncEngine, db: DbConfig, revision: str, row_sql: str) -> None:
    """The schema at ``revision`` with a row stored by ``row_sql`` as it was then, upgraded to head."""

    def old_then_row(sync_conn: Any) -> None:
        from alembic import command

        from shared.store.migrate import alembic_config

        command.upgrade(alembic_config(sync_conn), revision)
        sync_conn.execute(text(row_sql))

    await ensure_schema(engine, db)
    async with engine.begin() as conn:
        await conn.run_sync(old_then_row)
    assert await upgrade(engine, db) == (revision, head_revision())


def test_trades_stored_before_0003_read_source_ws(db: DbConfig) -> None:
    """0003 adds trades.source: a row stored under 0002 (the live channel was then the only
    source of trades) reads back "ws"; a row written after it keeps its own source."""

    async def go() -> None:
        engine = make_engine(db)
        try:
            await upgrade_from(
                engine,
                db,
                "0002",
                "INSERT INTO trades (trade_id, ticker, yes_price, no_price, count, taker_side,"
                " is_block_trade, ts, recv) VALUES ('old', 'T', 1, 2, 3, 'yes', false,"
                " '2026-01-01 00:00:00+00:00', '2026-01-01 00:00:00+00:00')",
            )
            async with engine.begin() as conn:
                await conn.execute(
                    text(
                        "INSERT INTO trades (trade_id, ticker, yes_price, no_price, count, taker_side,"
                        " is_block_trade, ts, recv, source) VALUES ('new', 'T', 1, 2, 3, 'no', false,"
                        " '2026-01-01 00:00:01+00:00', '2026-01-01 00:00:01+00:00', 'rest')"
                    )
                )
                rows = await conn.execute(text("SELECT trade_id, source FROM trades ORDER BY trade_id"))
                got = rows.all()
            assert [tuple(r) for r in got] == [("new", "rest"), ("old", "ws")]
        finally:
            await engine.dispose()

    asyncio.run(go())


def test_deltas_stored_before_0007_are_moved_into_runs_and_back(db: DbConfig) -> None:
    """0007 packs book deltas in runs: rows stored a row per delta under 0006 (several
    subscriptions and markets, both sides, values at the ends of int64, an hour and a day
    boundary) read back the same after the upgrade, through the store's reading path (and on
    PostgreSQL through the book_delta_rows view), and the same again after a downgrade."""
    import sqlalchemy as sa

    from shared.store.types import UtcTimestamp

    day = 86_400 * 10**6
    base = T0 // 1000 - 5 * 10**6
    want = {
        (c, sid, x, f"M{x % 5}", "yes" if x % 3 else "no", x % 9999 + 1, (x * 37) % 5000 - 2500,
         base + x * 2000 + (day if x > 2500 else 0), base + x * 2000 + 17)
        for c in (1, 2) for sid in (1, 7) for x in range(1, 3001) if x % 11
    }  # fmt: skip
    want |= {
        (3, 1, 2**62, "EDGE", "no", 2**63 - 1, -(2**63), 0, 10**17),
        (3, 1, 0, "EDGE", "yes", 0, 0, -1, 0),
    }
    old = sa.Table(
        "book_deltas", sa.MetaData(),
        *(sa.Column(n, sa.BigInteger()) for n in ("conn", "sid", "xseq")),
        *(sa.Column(n, sa.Text()) for n in ("ticker", "side")),
        *(sa.Column(n, sa.BigInteger()) for n in ("price", "delta")),
        *(sa.Column(n, UtcTimestamp()) for n in ("ts", "recv")),
    )  # fmt: skip
    names = [c.name for c in old.columns]

    def old_then_rows(sync_conn: Any) -> None:
        from alembic import command

        from shared.store.migrate import alembic_config

        command.upgrade(alembic_config(sync_conn), "0006")
        sync_conn.execute(sa.insert(old), [dict(zip(names, r, strict=True)) for r in sorted(want)])

    def down(sync_conn: Any) -> list[tuple[Any, ...]]:
        from alembic import command

        from shared.store.migrate import alembic_config

        command.downgrade(alembic_config(sync_conn), "0006")
        return [tuple(r) for r in sync_conn.execute(sa.select(old))]

    async def go() -> None:
        engine = make_engine(db)
        try:
            await ensure_schema(engine, db)
            async with engine.begin() as conn:
                await conn.run_sync(old_then_rows)
            assert await upgrade(engine, db) == ("0006", head_revision())
            got = await read_tables(engine, ["book_deltas"])
            assert got["book_deltas"] == want
            if engine.dialect.name == "postgresql":  # the SQL users' view decodes the same rows
                async with engine.connect() as conn:
                    view = await conn.execute(
                        text(
                            "SELECT conn, sid, xseq, ticker, side, price, delta, ts, recv "
                            "FROM book_delta_rows ORDER BY conn, sid, xseq"
                        )
                    )
                    rows = [tuple(as_us(v) for v in r) for r in view]
                assert rows == sorted(want)
            async with engine.begin() as conn:
                back = await conn.run_sync(down)
            assert {tuple(as_us(v) for v in r) for r in back} == want
        finally:
            await engine.dispose()

    asyncio.run(go())


def test_cli_upgrade_and_refusal_of_a_newer_schema(
    db: DbConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, path = config_for(tmp_path, db)
    # The real command, as a process, from another working directory.
    first = subprocess.run(
        kxfeed_cmd("db", "upgrade", "--config", str(path)),
        capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert f"(empty) -> {head_revision()}" in first.stdout
    run_cli = Cli(capsys, path)
    again = run_cli("upgrade")
    assert again.returncode == 0 and "already at" in again.stdout

    async def stamp_future() -> None:
        engine = make_engine(db)
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        with pytest.raises(SchemaTooNew):
            await upgrade(engine, db)
        await engine.dispose()

    asyncio.run(stamp_future())
    refused = run_cli("upgrade")
    assert refused.returncode == 2 and "newer than this kxfeed knows" in refused.stderr


# ---- writing ------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def opened(db: DbConfig) -> AsyncIterator[tuple[AsyncEngine, Store]]:
    """An engine on ``db`` migrated to head and a store over it, both closed after."""
    engine = make_engine(db)
    try:
        await upgrade(engine, db)
        store = open_store(engine)
        try:
            yield engine, store
        finally:
            await store.close()
    finally:
        await engine.dispose()


def core_for(committed: dict | None = None) -> WriterCore:
    return WriterCore(committed or {}, {}, lambda pub: True, max_buffer=10**7, stored=MAPPERS.__contains__)


def first_batch(msgs: list[Message], size: int = 100) -> tuple[WriterCore, Batch]:
    """A fresh core offered ``msgs``, and the first batch it takes (there is one)."""
    core = core_for()
    core.offer(msgs)
    batch = core.take(size)
    assert batch is not None
    return core, batch


def test_batches_store_exactly_the_messages_and_rewrites_change_nothing(db: DbConfig) -> None:
    msgs = stamp(mixed(3000, seed=11, duplicates=0.1))

    async def go() -> None:
        async with opened(db) as (engine, store):
            core = core_for()
            core.offer(msgs)
            batches = []
            sizes = iter([400, 2500] * 100)  # on PostgreSQL: unnest below 1000 rows per table, COPY above
            while (b := core.take(next(sizes))) is not None:
                batches.append(b)
            inserted = 0
            for b in batches:
                res = await store.write(b, NOW_US)
                inserted += sum(res.inserted.values())
                core.commit(b)
            # A batch whose commit reply was lost is retried at once: nothing changes.
            again = await store.write(batches[-1], NOW_US + 1)
            assert sum(again.inserted.values()) == 0 and sum(again.candidates.values()) > 0
            want = expected_tables(msgs)
            got = await read_tables(engine)
            for name, rows in want.items():
                assert got[name] == rows, name
            appended = (
                "book_deltas",
                "trades",
                "ticks",
                "lifecycle",
                "book_snapshots",
                "gaps",
                "signals",
                "worker_events",
            )
            assert inserted == sum(len(want[n]) for n in appended)
            async with engine.connect() as conn:
                offsets = {
                    (r.publisher, r.epoch, r.kind): r.seq for r in await conn.execute(select(stream_offsets))
                }
                hours = dict((await conn.execute(select(table_hours.c.table_name, table_hours.c.rows))).all())
            assert offsets == core.committed  # the rewrite did not move any position back
            assert max(s for (_, _, k), s in offsets.items() if k == "delta") == sum(
                1 for m in msgs if isinstance(m, BookDelta)
            )
            assert hours["book_deltas"] == len(want["book_deltas"])
            loaded_offsets, polls = await store.load_state()
            assert loaded_offsets == core.committed
            last: dict[str, Any] = {}
            for m in msgs:
                if isinstance(m, PollSnapshot):
                    last[m.ticker] = m.content()
            assert polls == last

    asyncio.run(go())


def test_messages_that_share_a_millisecond_or_a_read_are_each_stored(db: DbConfig) -> None:
    # Found end to end: Kalshi sends several ticker updates of one market within one ms, and a
    # connector read can hold two WS snapshots of one market (same receive time). Each is a row.
    recv = 1_795_000_000_000_000_000
    tickers = [
        Ticker(ticker="T", market_id="u", price=None, yes_bid=4000 + i, yes_ask=4100, yes_bid_size=1,
               yes_ask_size=1, last_trade_size=0, volume=i, open_interest=0, dollar_volume=0,
               dollar_open_interest=0, ts_exch=1_795_000_000_000, ts_recv=recv)
        for i in range(3)
    ]  # fmt: skip
    snaps = [
        BookSnapshot(ticker="T", market_id="u", conn=1, sid=1, xseq=x, yes=[(4000, 100)], no=[], ts_recv=recv)
        for x in (7, 9)
    ]
    msgs = stamp([*tickers, *snaps])

    async def go() -> tuple[int, int, int]:
        async with opened(db) as (engine, store):
            core, b = first_batch(msgs)
            await store.write(b, NOW_US)
            core.commit(b)
            again = await store.write(b, NOW_US + 1)  # a re-delivered batch still stores nothing twice
            got = await read_tables(engine, ["ticks", "book_snapshots"])
        return len(got["ticks"]), len(got["book_snapshots"]), sum(again.inserted.values())

    assert asyncio.run(go()) == (3, 2, 0)


def test_rows_discarded_as_duplicates_are_counted_and_said_once_with_their_context(
    db: DbConfig, caplog: pytest.LogCaptureFixture
) -> None:
    # A source restarted with the same ids (the simulator's trades before run ids): distinct
    # messages of a new stream whose natural keys are stored. The writer keeps the first rows and
    # must say, not only count, that it discarded the others.
    def run(epoch: int) -> list[Message]:
        msgs: list[Message] = [
            Trade(trade_id=f"t{i}", ticker="T", yes_price=4000, no_price=6000, count=100,
                  taker_side="yes", ts_recv=T0 + epoch * 10**9 + i)
            for i in range(5)
        ]  # fmt: skip
        return stamp(msgs, pub="sim-restarted", epoch=epoch)

    log = logging.getLogger("kxfeed.writer.test")
    burst = BurstLog(log)
    counters = {"rows": 0, "batches": 0}
    caplog.set_level(logging.INFO, logger=log.name)

    async def go() -> None:
        async with opened(db) as (_, store):
            core = core_for()
            for epoch in (1, 2, 3):
                core.offer(run(epoch))
                b = core.take(100)
                assert b is not None
                res = await store.write(b, NOW_US)
                core.commit(b)
                count_batch(b, res, 0.01, T0, counters, burst)

    before = REGISTRY.get_sample_value("kxfeed_writer_duplicate_rows_total", {"table": "trades"}) or 0
    asyncio.run(go())
    after = REGISTRY.get_sample_value("kxfeed_writer_duplicate_rows_total", {"table": "trades"}) or 0
    assert after - before == 10 and counters["duplicate_rows"] == 10 and counters["rows"] == 5
    said = [r for r in caplog.records if r.name == log.name]
    assert [r.getMessage() for r in said] == ["rows not stored: their natural key is already stored"]
    ctx = said[0].ctx  # type: ignore[attr-defined]
    assert ctx["table"] == "trades" and ctx["amount"] == 5 and ctx["rows_in_batch"] == 5
    assert ctx["batch_first_key"] == "trade_id='t0'" and ctx["streams"] == "sim-restarted/trade"
    burst.flush()  # the third batch's repeat is folded into one summary line, not lost
    folded = [r for r in caplog.records if r.name == log.name][1:]
    assert [(r.getMessage(), r.ctx["more_amount"]) for r in folded] == [("burst continued", 5)]  # type: ignore[attr-defined]


# One message per append table, every field a value no other field of it has: a mapper that put
# a value in another column would be read back under the wrong name.
E_MS, R_NS = 1_795_000_000_123, 1_795_000_000_456_789_000  # exchange ms, receive ns
E_US, R_US = E_MS * 1000, R_NS // 1000
DISTINCT: list[tuple[Message, str, dict[str, Any]]] = [
    (
        BookDelta(ticker="dt", market_id="dm", conn=11, sid=12, xseq=13, side="no", price=14, delta=-15,
                  ts_exch=E_MS, ts_recv=R_NS),
        "book_deltas",
        {"conn": 11, "sid": 12, "xseq": 13, "ticker": "dt", "side": "no", "price": 14, "delta": -15,
         "ts": E_US, "recv": R_US},
    ),
    (
        BookSnapshot(ticker="st", market_id="sm", conn=21, sid=22, xseq=23, yes=[(24, 25)], no=[(26, 27)],
                     source="rest", ts_exch=E_MS, ts_recv=R_NS),
        "book_snapshots",
        {"ticker": "st", "recv": R_US, "conn": 21, "sid": 22, "xseq": 23, "market_id": "sm",
         "source": "rest", "yes": "[[24,25]]", "no": "[[26,27]]", "ts": E_US},
    ),
    (
        Ticker(ticker="kt", market_id="km", price=31, yes_bid=32, yes_ask=33, yes_bid_size=34,
               yes_ask_size=35, last_trade_size=36, volume=37, open_interest=38, dollar_volume=39,
               dollar_open_interest=40, ts_exch=E_MS, ts_recv=R_NS),
        "ticks",
        {"ticker": "kt", "ts": E_US, "source": "ws", "recv": R_US, "market_id": "km", "status": None,
         "last_price": 31, "yes_bid": 32, "yes_ask": 33, "yes_bid_size": 34, "yes_ask_size": 35,
         "last_trade_size": 36, "volume": 37, "open_interest": 38, "dollar_volume": 39,
         "dollar_open_interest": 40, "fallback": False, "pub": "distinct", "epoch": 1, "seq": 1},
    ),
    (
        Trade(trade_id="tid", ticker="tt", yes_price=41, no_price=42, count=43, taker_side="no",
              is_block_trade=True, ts_exch=E_MS, ts_recv=R_NS, source="rest"),
        "trades",
        {"trade_id": "tid", "ticker": "tt", "yes_price": 41, "no_price": 42, "count": 43,
         "taker_side": "no", "is_block_trade": True, "ts": E_US, "recv": R_US, "source": "rest"},
    ),
    (
        MarketLifecycle(ticker="lt", event_type="settled", event_ticker="le", open_ms=E_MS + 1,
                        close_ms=E_MS + 2, result="yes", determination_ms=E_MS + 3, settlement_value=51,
                        settled_ms=E_MS + 4, is_deactivated=True, title="ti", yes_sub_title="ys",
                        no_sub_title="ns", ts_exch=E_MS, ts_recv=R_NS),
        "lifecycle",
        {"ticker": "lt", "event_type": "settled", "ts": E_US, "recv": R_US, "event_ticker": "le",
         "open_ts": E_US + 1000, "close_ts": E_US + 2000, "result": "yes",
         "determination_ts": E_US + 3000, "settlement_value": 51, "settled_ts": E_US + 4000,
         "is_deactivated": True, "price_ranges": None, "title": "ti", "yes_sub_title": "ys",
         "no_sub_title": "ns", "detail": None},
    ),
    (
        Gap(conn=61, sid=62, expected=63, received=64, tickers=["gt"], reason="seq", status="recovered",
            method="snapshot", detected_ms=E_MS + 5, recovered_ms=E_MS + 6, ts_exch=E_MS, ts_recv=R_NS),
        "gaps",
        {"conn": 61, "sid": 62, "expected": 63, "status": "recovered", "received": 64,
         "tickers": '["gt"]', "reason": "seq", "method": "snapshot", "detected": E_US + 5000,
         "recovered": E_US + 6000, "ts": E_US, "recv": R_US},
    ),
    (
        Signal(ticker="gt2", strategy="sg", side="no", price=71, size=72, fair_ppm=73, edge=74, fees=75,
               legs=["l1"], detail="dd", ts_exch=E_MS, ts_recv=R_NS),
        "signals",
        {"strategy": "sg", "ticker": "gt2", "side": "no", "ts": E_US, "recv": R_US, "price": 71,
         "size": 72, "fair_ppm": 73, "edge": 74, "fees": 75, "legs": '["l1"]', "detail": "dd"},
    ),
    (
        WorkerEvent(worker="wk", event="exited", pid=81, exit_code=82, detail="wd", ts_exch=E_MS,
                    ts_recv=R_NS),
        "worker_events",
        {"worker": "wk", "ts": E_US, "event": "exited", "recv": R_US, "pid": 81, "exit_code": 82,
         "detail": "wd"},
    ),
    (
        Fill(trade_id="ft", order_id="fo", ticker="fk", is_taker=True, side="no", yes_price=91, count=92,
             fee=93, action="sell", post_position=-94, client_order_id="fc", ts_exch=E_MS, ts_recv=R_NS,
             subaccount=95),
        "fills",
        {"trade_id": "ft", "order_id": "fo", "ticker": "fk", "is_taker": True, "side": "no",
         "yes_price": 91, "count": 92, "fee": 93, "action": "sell", "post_position": -94,
         "client_order_id": "fc", "ts": E_US, "recv": R_US, "subaccount": 95},
    ),
    (
        MarketPosition(ticker="pk", position=-101, position_cost=102, realized_pnl=-103, fees_paid=104,
                       volume=105, ts_exch=E_MS, ts_recv=R_NS),
        "positions",
        {"ticker": "pk", "ts": E_US, "recv": R_US, "position": -101, "position_cost": 102,
         "realized_pnl": -103, "fees_paid": 104, "volume": 105, "pub": "distinct", "epoch": 1,
         "seq": 1},
    ),
    (
        UserOrder(order_id="oo", ticker="ok", status="resting", side="yes", yes_price=111, fill_count=112,
                  remaining_count=113, initial_count=114, taker_fill_cost=115, maker_fill_cost=116,
                  taker_fees=117, maker_fees=-118, client_order_id="oc", order_group_id="og",
                  self_trade_prevention_type="maker", created_ms=E_MS + 7, expiration_ms=E_MS + 8,
                  last_update_reason="amend", subaccount=119, ts_exch=E_MS, ts_recv=R_NS),
        "orders",
        {"order_id": "oo", "ts": E_US, "status": "resting", "yes_price": 111, "fill_count": 112,
         "remaining_count": 113, "recv": R_US, "ticker": "ok", "side": "yes", "initial_count": 114,
         "taker_fill_cost": 115, "maker_fill_cost": 116, "taker_fees": 117, "maker_fees": -118,
         "client_order_id": "oc", "order_group_id": "og", "self_trade_prevention_type": "maker",
         "created_ts": E_US + 7000, "expiration_ts": E_US + 8000, "last_update_reason": "amend",
         "subaccount": 119},
    ),
    (
        OrderGroupUpdate(order_group_id="gg", event_type="limit_updated", contracts_limit=121, ts_exch=E_MS,
                         ts_recv=R_NS),
        "order_groups",
        {"order_group_id": "gg", "event_type": "limit_updated", "ts": E_US, "recv": R_US,
         "contracts_limit": 121},
    ),
]  # fmt: skip


def as_us(v: Any) -> Any:
    if isinstance(v, datetime):
        return (v - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    return v


def test_every_column_holds_its_own_field_read_back_by_name(db: DbConfig) -> None:
    assert sorted(t for _, t, _ in DISTINCT) == sorted(APPEND), "a message for every append table"
    for _, table, want in DISTINCT:
        assert list(want) == list(APPEND[table].columns), table

    async def go() -> dict[str, dict[str, Any]]:
        async with opened(db) as (engine, store):
            _, b = first_batch(stamp([m for m, _, _ in DISTINCT], pub="distinct"))
            await store.write(b, NOW_US)
            out = {}
            async with engine.connect() as conn:
                for table in APPEND:
                    if table in PACKED:  # a run: its one delta through the store's unpacking
                        got = [
                            r async for part in deltaread.deltas(conn, deltaread.DeltaFilter()) for r in part
                        ]
                        assert len(got) == 1, got
                        out[table] = dict(zip(APPEND[table].columns, got[0], strict=True))
                        continue
                    rows = (await conn.execute(text(f'SELECT * FROM "{table}"'))).mappings().all()
                    assert len(rows) == 1, (table, rows)
                    out[table] = dict(rows[0])
        return out

    got = asyncio.run(go())
    for _, table, want in DISTINCT:
        # Timestamps come back as datetimes (the column type): compared as exact microseconds.
        row = {k: as_us(v) for k, v in got[table].items()}
        assert row == want, table


@pytest.mark.parametrize("per_hour", [1, 700])  # PostgreSQL: unnest, then COPY (>= 1000 rows)
def test_a_batch_spanning_an_hour_counts_rows_per_hour(db: DbConfig, per_hour: int) -> None:
    def trade(i: int, recv: int) -> Trade:
        return Trade(
            trade_id=f"h{i}", ticker="T", yes_price=1, no_price=9999, count=1, taker_side="no", ts_recv=recv
        )

    starts = (T0 - 10**9 * per_hour, T0, T0 + HOUR_NS)
    msgs = stamp(
        [trade(h * per_hour + i, s + i * 1000) for h, s in enumerate(starts) for i in range(per_hour)]
    )

    async def go() -> None:
        async with opened(db) as (engine, store):
            _, batch = first_batch(msgs, 10_000)
            assert len(batch.hours["trades"]) == 3
            res = await store.write(batch, NOW_US)
            assert res.inserted == {"trades": 3 * per_hour}
            async with engine.connect() as conn:
                rows = (
                    await conn.execute(select(table_hours.c.hour, table_hours.c.rows).order_by("hour"))
                ).all()
            assert [r.rows for r in rows] == [per_hour] * 3
            assert [int(r.hour.timestamp()) for r in rows] == [
                T0 // 10**9 - 3600,
                T0 // 10**9,
                T0 // 10**9 + 3600,
            ]

    asyncio.run(go())


def test_a_row_the_database_refuses_is_isolated_and_the_rest_stored(db: DbConfig) -> None:
    def delta(i: int, price: int) -> BookDelta:
        return book_delta("T", i, price, 100, market_id="u", ts_recv=T0 + i)

    msgs = stamp([delta(1, 100), delta(2, 2**63), delta(3, 300)])  # 2**63 does not fit a BIGINT

    async def go() -> None:
        async with opened(db) as (engine, store):
            _, batch = first_batch(msgs, 10)
            with pytest.raises(Exception) as err:
                await store.write(batch, NOW_US)
            assert classify(err.value) == "data"
            await store.reset()
            res = await store.write(batch, NOW_US, isolate=True)
            assert res.inserted == {"book_deltas": 2}
            assert [r.table for r in res.rejected] == ["book_deltas"] and "1, 1, 2" in res.rejected[0].key
            got = await read_tables(engine, ["book_deltas", "stream_offsets"])
            assert sorted(r[2] for r in got["book_deltas"]) == [1, 3]
            assert {(r[2], r[3]) for r in got["stream_offsets"]} == {("delta", 3)}

    asyncio.run(go())


# ---- queries ------------------------------------------------------------------------------

TK = "KXQ-26NOV03-A"


def query_fixture() -> list[Message]:
    ms = 1_793_749_200_000

    def d(xseq: int, side: str, price: int, delta: int, ticker: str = TK) -> BookDelta:
        return BookDelta(
            ticker=ticker, market_id="u", conn=5, sid=2, xseq=xseq, side=side,  # type: ignore[arg-type]
            price=price, delta=delta, ts_exch=ms + 100 + xseq, ts_recv=(ms + 100 + xseq) * 10**6,
        )  # fmt: skip

    return [
        BookSnapshot(
            ticker=TK, market_id="u", conn=5, sid=2, xseq=1, yes=[(4000, 1000)], no=[(5500, 300)],
            ts_exch=ms, ts_recv=ms * 10**6,
        ),
        BookSnapshot(
            ticker="KXQ-26NOV03-B", market_id="v", conn=5, sid=2, xseq=2, yes=[], no=[], ts_exch=ms,
            ts_recv=ms * 10**6 + 1000,
        ),
        d(3, "yes", 4000, 500),
        d(5, "no", 5500, -300),  # 4 is missing
        d(6, "no", 5400, 100),
        d(7, "yes", 4100, 200),
        d(10, "yes", 100, 100, ticker="KXQ-26NOV03-B"),  # 8 and 9 missing, in the other market
        Ticker(
            ticker=TK, market_id="u", price=4050, yes_bid=3900, yes_ask=4700, yes_bid_size=1, yes_ask_size=2,
            last_trade_size=0, volume=0, open_interest=0, dollar_volume=0, dollar_open_interest=0,
            ts_exch=ms + 50, ts_recv=(ms + 50) * 10**6,
        ),
        Trade(
            trade_id="q1", ticker=TK, yes_price=4050, no_price=5950, count=250, taker_side="yes",
            ts_exch=ms + 60, ts_recv=(ms + 60) * 10**6,
        ),
        Gap(
            conn=5, sid=2, expected=4, received=5, tickers=[TK, "KXQ-26NOV03-B"], reason="seq jump",
            ts_exch=ms + 105, ts_recv=(ms + 105) * 10**6,
        ),
    ]  # fmt: skip


def test_cli_latest_gaps_stats(db: DbConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, path = config_for(tmp_path, db)
    run_cli = Cli(capsys, path)
    msgs = stamp(query_fixture())

    async def fill() -> None:
        async with opened(db) as (_, store):
            _, batch = first_batch(msgs)
            await store.write(batch, NOW_US)

    asyncio.run(fill())

    latest = run_cli("latest", TK, "--json")
    assert latest.returncode == 0, latest.stderr
    data = json.loads(latest.stdout)
    assert data["newest"] == "book"
    book = next(t for t in data["tops"] if t["source"] == "book")
    # yes: 4000 x (1000 + 500), 4100 x 200 -> best bid 4100 x 200; no: 5500 gone, 5400 x 100 -> ask 4600
    assert (book["yes_bid"], book["yes_bid_size"], book["yes_ask"], book["yes_ask_size"]) == (
        4100,
        200,
        4600,
        100,
    )
    assert "+ 4 deltas" in book["detail"]
    ws = next(t for t in data["tops"] if t["source"] == "ws")
    assert (ws["yes_bid"], ws["yes_ask"]) == (3900, 4700)
    assert data["trade"]["trade_id"] == "q1" and data["trade"]["count"] == 250
    human = run_cli("latest", TK)
    assert "* book" in human.stdout and "$0.4100 x 2.00" in human.stdout and "count 2.50" in human.stdout
    assert run_cli("latest", "NOPE").returncode == 1

    gaps = run_cli("gaps", TK, "--json")
    assert gaps.returncode == 0, gaps.stderr
    g = json.loads(gaps.stdout)
    (sub,) = g["subscriptions"]
    assert (sub["conn"], sub["sid"], sub["first_seq"], sub["last_seq"]) == (5, 2, 1, 10)
    assert sub["holes"] == [[4, 4], [8, 9]] and g["missing"] == 3 and g["holes"] == 2
    assert [e["expected"] for e in g["events"]] == [4]
    human = run_cli("gaps", TK)
    assert "2 holes, 3 sequence numbers missing" in human.stdout and "missing 8..9 (2)" in human.stdout

    stats = run_cli("stats", "--json", "--hours", "100000")
    assert stats.returncode == 0, stats.stderr
    s = json.loads(stats.stdout)
    tables = {t["table"]: t for t in s["tables"]}
    assert tables["book_deltas"]["rows"] == 5 and tables["book_snapshots"]["rows"] == 2
    assert tables["book_deltas"]["bytes"] > 0
    assert {h[1] for h in s["hours"]} >= {"book_deltas", "trades", "ticks"}
    human = run_cli("stats")
    assert human.returncode == 0 and "book_deltas" in human.stdout


def test_queries_refuse_a_database_without_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, path = config_for(tmp_path, DbConfig(url=f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"))
    res = Cli(capsys, path)("stats")
    assert res.returncode == 2 and "kxfeed db upgrade" in res.stderr


def test_deltas_are_stored_once_whatever_the_batches_repeat_or_fill_later(db: DbConfig) -> None:
    """Deltas are packed in runs (no unique key per delta): a batch repeating stored deltas
    under other batch boundaries (a journal replay), one repeating a delta within itself, and
    one bringing a delta below the stored high-water mark (it filled a hole) each store every
    delta once, count the rest as duplicates, and read back in (conn, sid, xseq) order; a
    store restarted (its caches gone) finds the high-water mark in the table."""

    def delta(xseq: int, sid: int = 1) -> BookDelta:
        return book_delta("T", xseq, 100 + xseq % 7, xseq, conn=9, sid=sid, ts_recv=T0 + xseq)

    first = [delta(i) for i in range(1, 1501) if i != 700]
    # a replay: 200 deltas already stored (other batch boundaries), 1300 new, one new twice
    overlap = [delta(i) for i in range(1301, 3001)] + [delta(2000)]
    late = [delta(700), delta(3001), delta(5, sid=2)]  # 700 is below the mark, never stored
    again = [delta(i) for i in (1, 700, 3001, 3002)]

    async def go() -> None:
        async with opened(db) as (engine, store):
            await store.warm()
            results = []
            for i, part in enumerate((first, overlap, late)):
                results.append(await store.write(first_batch(stamp(part, pub=f"p{i}"), 5000)[1], NOW_US))
            await store.reset()  # a restarted writer: no cached marks
            results.append(await store.write(first_batch(stamp(again, pub="p3"), 10)[1], NOW_US))
            assert [r.inserted.get("book_deltas", 0) for r in results] == [1499, 1500, 3, 1]
            assert [r.candidates["book_deltas"] for r in results] == [1499, 1701, 3, 4]
            got = await read_tables(engine, ["book_deltas"])
            keys = sorted((r[1], r[2]) for r in got["book_deltas"])
            assert keys == [(1, i) for i in range(1, 3003)] + [(2, 5)]
            async with engine.connect() as conn:
                ordered = [
                    r[:3] async for part in deltaread.deltas(conn, deltaread.DeltaFilter()) for r in part
                ]
                hours = (await conn.execute(select(table_hours.c.rows))).scalars().all()
            assert ordered == sorted(ordered) and len(ordered) == 3003
            assert sum(hours) == 3003

    asyncio.run(go())


def test_old_deltas_far_apart_are_looked_up_near_each_and_stored_once(db: DbConfig) -> None:
    """Deltas below the high-water mark, seqs far apart in one batch (each looked up among the
    runs near it): the stored ones are duplicates, the one filling a hole is stored."""
    from shared.store.deltapack import MAX_SPAN

    far = 3 * MAX_SPAN

    def delta(xseq: int) -> BookDelta:
        return book_delta("T", xseq, 100, 1, conn=5, sid=1, ts_recv=T0 + xseq)

    first = [delta(x) for x in (1, 2, 4, far, far + 1, far + 3)]
    again = [delta(x) for x in (2, 3, far + 1, far + 2)]  # 3 and far + 2 were never stored

    async def go() -> None:
        async with opened(db) as (engine, store):
            one = await store.write(first_batch(stamp(first, pub="f"), 10)[1], NOW_US)
            two = await store.write(first_batch(stamp(again, pub="g"), 10)[1], NOW_US)
            assert (one.inserted, two.inserted) == ({"book_deltas": 6}, {"book_deltas": 2})
            got = await read_tables(engine, ["book_deltas"])
            assert sorted(r[2] for r in got["book_deltas"]) == [1, 2, 3, 4, far, far + 1, far + 2, far + 3]

    asyncio.run(go())
