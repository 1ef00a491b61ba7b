"""This account's fills and positions, and the markets' strikes, through the writer into a real
SQLite file and a real PostgreSQL: stored once whatever the replays, read back exactly, shown
by ``kxfeed db latest``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from shared.config import DbConfig
from shared.messages import (
    Fill,
    MarketLifecycle,
    MarketMeta,
    MarketPosition,
    Message,
    OrderGroupUpdate,
    UserOrder,
)
from shared.store.engine import make_engine
from shared.store.schema import fills, markets, order_groups, orders, positions
from tests.integration.test_writer_db import NOW_US, Cli, config_for, core_for, opened, upgrade_from
from tests.support.pg import DB_PARAMS, fresh_db
from tests.support.synth import stamp

TK = "KXNBAGAME-26NOV03LALBOS-LAL"
MS = 1_793_749_267_412
RECV = MS * 10**6 + 5_000_000


@pytest.fixture(params=DB_PARAMS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DbConfig]:
    yield from fresh_db(request, tmp_path)


def account_messages() -> list[Message]:
    f1 = Fill(
        trade_id="t-1", order_id="o-buy", ticker=TK, is_taker=True, side="yes", yes_price=4300, count=1250,
        fee=87_500, action="buy", post_position=1250, client_order_id="mine-7", ts_exch=MS, ts_recv=RECV,
    )  # fmt: skip
    # The other side of the same trade was this account's too: another fill of trade t-1.
    f2 = Fill(
        trade_id="t-1", order_id="o-sell", ticker=TK, is_taker=False, side="no", yes_price=4300, count=1250,
        fee=0, action="sell", post_position=0, ts_exch=MS, ts_recv=RECV,
    )  # fmt: skip
    # A reconnecting connector publishes f1 again as a new bus message: the same fill.
    f1_again = Fill(
        trade_id="t-1", order_id="o-buy", ticker=TK, is_taker=True, side="yes", yes_price=4300, count=1250,
        fee=87_500, action="buy", post_position=1250, client_order_id="mine-7", ts_exch=MS,
        ts_recv=RECV + 10**9,
    )  # fmt: skip
    # Two position updates of one market in one read: one receive time, two snapshots.
    p1 = MarketPosition(
        ticker=TK, position=1250, position_cost=5_375_000, realized_pnl=0, fees_paid=87_500, volume=1250,
        ts_recv=RECV,
    )  # fmt: skip
    p2 = MarketPosition(
        ticker=TK, position=0, position_cost=0, realized_pnl=-87_500, fees_paid=87_500, volume=2500,
        ts_recv=RECV,
    )  # fmt: skip
    life = MarketLifecycle(
        ticker=TK, event_type="metadata_updated", strike_type="between", floor_strike="3.25",
        cap_strike="3.5", ts_exch=MS, ts_recv=RECV,
    )  # fmt: skip
    meta = MarketMeta(
        ticker=TK, event_ticker="KXNBAGAME-26NOV03LALBOS", series_ticker="KXNBAGAME", title="LAL at BOS",
        yes_sub_title="LAL", no_sub_title="BOS", status="active", ts_exch=MS + 1, ts_recv=RECV + 1,
    )  # fmt: skip
    resting = UserOrder(
        order_id="o-buy", ticker=TK, status="resting", side="yes", yes_price=4300, fill_count=0,
        remaining_count=1250, initial_count=1250, taker_fill_cost=0, maker_fill_cost=0, taker_fees=0,
        maker_fees=0, client_order_id="mine-7", order_group_id="g-1", created_ms=MS - 10, ts_exch=MS - 10,
        ts_recv=RECV - 10**6,
    )  # fmt: skip
    executed = UserOrder(
        order_id="o-buy", ticker=TK, status="executed", side="yes", yes_price=4300, fill_count=1250,
        remaining_count=0, initial_count=1250, taker_fill_cost=5_375_000, maker_fill_cost=0,
        taker_fees=87_500, maker_fees=0, client_order_id="mine-7", order_group_id="g-1",
        created_ms=MS - 10, ts_exch=MS, ts_recv=RECV,
    )  # fmt: skip
    # Republished by a reconnecting connector: the same state at the same time, one row.
    executed_again = UserOrder(
        order_id="o-buy", ticker=TK, status="executed", side="yes", yes_price=4300, fill_count=1250,
        remaining_count=0, initial_count=1250, taker_fill_cost=5_375_000, maker_fill_cost=0,
        taker_fees=87_500, maker_fees=0, client_order_id="mine-7", order_group_id="g-1",
        created_ms=MS - 10, ts_exch=MS, ts_recv=RECV + 10**9,
    )  # fmt: skip
    group = OrderGroupUpdate(
        order_group_id="g-1", event_type="triggered", ts_exch=MS + 2, ts_recv=RECV + 2
    )  # fmt: skip
    return stamp(
        [resting, f1, f2, p1, p2, executed, life, meta, group, f1_again, executed_again],
        pub="connector",
        epoch=3,
    )


def test_fills_positions_strikes_stored_once_through_replays_and_shown(
    db: DbConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    msgs = account_messages()

    async def go() -> None:
        async with opened(db) as (engine, store):
            core = core_for()
            core.offer(msgs)
            batch = core.take(100)
            assert batch is not None and core.take(100) is None
            first = await store.write(batch, NOW_US)
            got = {t: first.inserted[t] for t in ("fills", "positions", "orders", "order_groups")}
            assert got == {"fills": 2, "positions": 2, "orders": 2, "order_groups": 1}
            # The commit reply lost: the batch is written again. And a writer that lost its
            # positions replays the whole journal: a fresh core, the same messages.
            again = await store.write(batch, NOW_US + 1)
            fresh = core_for()
            fresh.offer(msgs, replay=True)
            replayed = fresh.take(100)
            assert replayed is not None
            third = await store.write(replayed, NOW_US + 2)
            assert sum(again.inserted.values()) == sum(third.inserted.values()) == 0
            async with engine.connect() as conn:
                f = fills.c
                got_fills = (await conn.execute(select(fills).order_by(f.order_id))).all()
                got_positions = (await conn.execute(select(positions).order_by(positions.c.seq))).all()
                market = (await conn.execute(select(markets).where(markets.c.ticker == TK))).one()
                got_orders = (await conn.execute(select(orders).order_by(orders.c.ts))).all()
                got_groups = (await conn.execute(select(order_groups))).all()
            assert [(r.status, r.fill_count, r.remaining_count, r.taker_fees) for r in got_orders] == [
                ("resting", 0, 1250, 0),
                ("executed", 1250, 0, 87_500),
            ]
            assert [(r.order_group_id, r.event_type, r.contracts_limit) for r in got_groups] == [
                ("g-1", "triggered", None)
            ]
            assert [(r.trade_id, r.order_id, r.side, r.count, r.fee, r.post_position) for r in got_fills] == [
                ("t-1", "o-buy", "yes", 1250, 87_500, 1250),
                ("t-1", "o-sell", "no", 1250, 0, 0),
            ]
            assert got_fills[0].client_order_id == "mine-7" and got_fills[1].client_order_id is None
            assert [(r.position, r.realized_pnl, r.volume, r.seq) for r in got_positions] == [
                (1250, 0, 1250, 1),
                (0, -87_500, 2500, 2),
            ]
            assert (market.strike_type, market.floor_strike, market.cap_strike) == ("between", "3.25", "3.5")
            assert market.title == "LAL at BOS"  # the REST-side meta after it erased no strike

    asyncio.run(go())

    _, path = config_for(tmp_path, db)
    run_cli = Cli(capsys, path)
    listed = run_cli("latest", "--table", "fills", "--json")
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    assert data["table"] == "fills" and {r["order_id"] for r in data["rows"]} == {"o-buy", "o-sell"}
    assert {r["fee"] for r in data["rows"]} == {87_500, 0}
    human = run_cli("latest", TK, "--table", "fills")
    assert human.returncode == 0, human.stderr
    assert "buy yes 12.50 @ yes $0.4300  fee $0.087500 taker" in human.stdout
    assert "client mine-7" in human.stdout
    pos = run_cli("latest", "--table", "positions", "--limit", "1")
    assert pos.returncode == 0 and len(pos.stdout.strip().splitlines()) == 2  # title + one row
    assert "position 0.00" in pos.stdout and "realized -$0.087500" in pos.stdout  # the later of one read
    assert run_cli("latest", "NOPE", "--table", "positions").returncode == 1
    listed_orders = run_cli("latest", TK, "--table", "orders")
    assert listed_orders.returncode == 0, listed_orders.stderr
    lines = listed_orders.stdout.splitlines()
    assert "executed yes @ yes $0.4300  filled 12.50 of 12.50, 0.00 resting" in lines[1]
    assert "fees $0.087500 + $0.000000" in lines[1] and "resting yes" in lines[2]
    latest = run_cli("latest", TK, "--json")
    assert latest.returncode == 1  # no book, tick or trade stored: only the market
    market = json.loads(latest.stdout)["market"]
    assert (market["strike_type"], market["floor_strike"], market["cap_strike"]) == ("between", "3.25", "3.5")
    shown = run_cli("latest", TK)
    assert shown.returncode == 1 and "strike between floor 3.25 cap 3.5" in shown.stdout
    assert run_cli("latest").returncode == 2


def test_markets_stored_before_0004_keep_their_rows_with_no_strike(db: DbConfig) -> None:
    """0004 adds fills, positions and the markets' strike columns: a market stored under 0003
    keeps its row, its strikes null (nothing then knew them)."""

    async def go() -> None:
        engine = make_engine(db)
        try:
            old = "INSERT INTO markets (ticker, title, updated) VALUES ('OLD', 'Old', CURRENT_TIMESTAMP)"
            await upgrade_from(engine, db, "0003", old)
            async with engine.connect() as conn:
                m = markets.c
                q = select(m.title, m.strike_type, m.floor_strike, m.cap_strike).where(m.ticker == "OLD")
                row = (await conn.execute(q)).one()
                assert (await conn.execute(select(fills))).all() == []
                assert (await conn.execute(select(positions))).all() == []
            assert (row.title, row.strike_type, row.floor_strike, row.cap_strike) == ("Old", None, None, None)
        finally:
            await engine.dispose()

    asyncio.run(go())
