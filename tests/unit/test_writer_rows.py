"""Row mapping: every stored kind -> the exact row, poll dedup, state upserts in order."""

from __future__ import annotations

import msgspec
import pytest

from services.writer.rows import MAPPERS, STORED_KINDS, UNSTORED_KINDS, BatchBuilder
from shared.messages import (
    KINDS,
    BookDelta,
    BookSnapshot,
    EventLifecycle,
    FeeUpdate,
    Fill,
    Gap,
    MarketLifecycle,
    MarketMeta,
    MarketPosition,
    OrderGroupUpdate,
    PollSnapshot,
    PriceRange,
    Signal,
    Ticker,
    Trade,
    UserOrder,
    WorkerEvent,
)
from shared.store.schema import APPEND, STATE
from tests.support.synth import expected_tables, mixed

RECV = 1_793_749_267_412_345_678  # ns
RECV_US = RECV // 1000
EXCH = 1_793_749_267_400  # ms
EXCH_US = EXCH * 1000


def build(*msgs: object, polls: dict | None = None) -> BatchBuilder:
    b = BatchBuilder({} if polls is None else polls)
    for m in msgs:
        assert b.add(m)  # type: ignore[arg-type]
    return b


def only_row(b: BatchBuilder, table: str) -> tuple:
    assert list(b.rows) == [table]
    (row,) = b.rows[table]
    assert len(row) == len(APPEND[table].columns)
    return row


def test_every_durable_kind_is_stored_and_nothing_else() -> None:
    durable = {tag for tag, cls in KINDS.items() if cls.durable}
    assert durable == STORED_KINDS | UNSTORED_KINDS
    assert not STORED_KINDS & UNSTORED_KINDS
    assert set() == UNSTORED_KINDS
    assert {
        "snap", "delta", "ticker", "trade", "lifecycle", "evlifecycle", "fee", "meta", "poll", "gap",
        "signal", "wevent", "fill", "position", "order", "ordergroup",
    } == STORED_KINDS  # fmt: skip


def test_delta_row_exact_integers_and_times() -> None:
    m = BookDelta(
        ticker="KXA-1", market_id="u", conn=3, sid=9, xseq=77, side="no", price=4300, delta=-2500,
        ts_exch=EXCH, ts_recv=RECV,
    )  # fmt: skip
    assert only_row(build(m), "book_deltas") == (3, 9, 77, "KXA-1", "no", 4300, -2500, EXCH_US, RECV_US)


def test_missing_exchange_time_falls_back_to_receive_time() -> None:
    m = BookDelta(
        ticker="T", market_id="u", conn=1, sid=1, xseq=1, side="yes", price=1, delta=1, ts_recv=RECV
    )  # fmt: skip
    row = only_row(build(m), "book_deltas")
    assert row[7] == row[8] == RECV_US


def test_snapshot_levels_are_exact_json() -> None:
    m = BookSnapshot(
        ticker="T", market_id="u", conn=2, sid=4, xseq=1, yes=[(4300, 2500), (100, 1)], no=[],
        source="rest", ts_recv=RECV,
    )  # fmt: skip
    row = only_row(build(m), "book_snapshots")
    assert row == ("T", RECV_US, 2, 4, 1, "u", "rest", "[[4300,2500],[100,1]]", "[]", RECV_US)


def test_ticker_and_poll_share_ticks_with_their_source() -> None:
    t = Ticker(
        ticker="T", market_id="u", price=None, yes_bid=4000, yes_ask=4100, yes_bid_size=10, yes_ask_size=20,
        last_trade_size=5, volume=10**15, open_interest=7, dollar_volume=9 * 10**15, dollar_open_interest=3,
        ts_exch=EXCH, ts_recv=RECV, pub="connector", epoch=5, seq=9,
    )  # fmt: skip
    p = PollSnapshot(
        ticker="T", status="active", yes_bid=None, yes_ask=4100, yes_bid_size=0, yes_ask_size=20,
        last_price=4050, volume=1, open_interest=2, fallback=True, ts_recv=RECV + 1000,
    )  # fmt: skip
    rows = build(t, p).rows["ticks"]
    assert rows[0] == (
        "T", EXCH_US, "ws", RECV_US, "u", None, None, 4000, 4100, 10, 20, 5, 10**15, 7, 9 * 10**15, 3, False,
        "connector", 5, 9,
    )  # fmt: skip
    assert rows[1] == (
        "T", RECV_US + 1, "poll", RECV_US + 1, None, "active", 4050, None, 4100, 0, 20, None, 1, 2, None,
        None, True, "", 0, 0,
    )  # fmt: skip


def test_identical_poll_snapshots_are_stored_once_per_change() -> None:
    def poll(i: int, bid: int | None) -> PollSnapshot:
        return PollSnapshot(
            ticker="T", status="active", yes_bid=bid, yes_ask=4100, yes_bid_size=1, yes_ask_size=1,
            last_price=None, volume=5, open_interest=6, ts_recv=RECV + i * 10**9,
        )  # fmt: skip

    other = msgspec.structs.replace(poll(0, 4000), ticker="U")
    b = build(poll(0, 4000), poll(1, 4000), other, poll(2, 4000), poll(3, None), poll(4, None), poll(5, 4000))
    stored = [(r[0], r[7]) for r in b.rows["ticks"]]
    assert stored == [("T", 4000), ("U", 4000), ("T", None), ("T", 4000)]
    assert b.unchanged_polls == 3


def test_poll_dedup_continues_from_the_stored_state() -> None:
    p = PollSnapshot(
        ticker="T", status="active", yes_bid=1, yes_ask=2, yes_bid_size=3, yes_ask_size=4, last_price=5,
        volume=6, open_interest=7, ts_recv=RECV,
    )  # fmt: skip
    polls = {"T": ("active", 1, 2, 3, 4, 5, 6, 7)}
    b = build(p, polls=polls)
    assert b.rows == {} and b.unchanged_polls == 1
    b = build(msgspec.structs.replace(p, status="closed"), polls=polls)
    assert len(b.rows["ticks"]) == 1 and polls["T"][0] == "closed"


def test_trade_signal_gap_worker_event_rows() -> None:
    tr = Trade(
        trade_id="abc", ticker="T", yes_price=4400, no_price=5600, count=150, taker_side="yes",
        is_block_trade=True, ts_exch=EXCH, ts_recv=RECV,
    )  # fmt: skip
    assert only_row(build(tr), "trades") == ("abc", "T", 4400, 5600, 150, "yes", True, EXCH_US, RECV_US, "ws")
    backfilled = msgspec.structs.replace(tr, source="rest")
    assert only_row(build(backfilled), "trades")[-1] == "rest"
    sg = Signal(
        ticker="T", strategy="arb", side="no", price=1, size=2, fair_ppm=3, edge=-4, fees=5, legs=["A", "B"],
        ts_recv=RECV,
    )  # fmt: skip
    signal_row = ("arb", "T", "no", RECV_US, RECV_US, 1, 2, 3, -4, 5, '["A","B"]', "")
    assert only_row(build(sg), "signals") == signal_row
    gp = Gap(conn=1, sid=2, expected=10, received=12, tickers=["T"], reason="jump", ts_recv=RECV)
    gap_row = (1, 2, 10, "open", 12, '["T"]', "jump", "", None, None, RECV_US, RECV_US)
    assert only_row(build(gp), "gaps") == gap_row
    gp2 = msgspec.structs.replace(
        gp, status="recovered", method="rest", detected_ms=EXCH, recovered_ms=EXCH + 5
    )  # fmt: skip
    row = only_row(build(gp2), "gaps")
    assert row[3] == "recovered" and row[8] == EXCH_US and row[9] == EXCH_US + 5000
    we = WorkerEvent(worker="connector", event="exited", pid=9, exit_code=-9, ts_recv=RECV)
    assert only_row(build(we), "worker_events") == ("connector", RECV_US, "exited", RECV_US, 9, -9, "")


def test_fill_and_position_rows_exact_integers() -> None:
    f = Fill(
        trade_id="t1", order_id="o1", ticker="T", is_taker=False, side="no", yes_price=4300, count=1250,
        fee=87_500, action="sell", post_position=-3750, client_order_id="mine-7", ts_exch=EXCH,
        ts_recv=RECV, subaccount=2,
    )  # fmt: skip
    fill_row = (
        "t1",
        "o1",
        "T",
        False,
        "no",
        4300,
        1250,
        87_500,
        "sell",
        -3750,
        "mine-7",
        EXCH_US,
        RECV_US,
        2,
    )
    assert only_row(build(f), "fills") == fill_row
    p = MarketPosition(
        ticker="T", position=-3750, position_cost=50_000_000, realized_pnl=-10_000_000, fees_paid=1_000_000,
        volume=1500, pub="connector", epoch=9, seq=4, ts_recv=RECV,
    )  # fmt: skip
    position_row = ("T", RECV_US, RECV_US, -3750, 50_000_000, -10_000_000, 1_000_000, 1500, "connector", 9, 4)
    assert only_row(build(p), "positions") == position_row


def test_order_and_order_group_rows_exact_integers() -> None:
    o = UserOrder(
        order_id="o1", ticker="T", status="executed", side="no", yes_price=3500, fill_count=1000,
        remaining_count=0, initial_count=1000, taker_fill_cost=3_500_000, maker_fill_cost=0,
        taker_fees=70_001, client_order_id="mine", created_ms=EXCH - 5, subaccount=2, ts_exch=EXCH,
        ts_recv=RECV,
    )  # fmt: skip
    order_row = (
        "o1", EXCH_US, "executed", 3500, 1000, 0, RECV_US, "T", "no", 1000, 3_500_000, 0, 70_001, None,
        "mine", None, None, (EXCH - 5) * 1000, None, None, 2,
    )  # fmt: skip
    assert only_row(build(o), "orders") == order_row
    g = OrderGroupUpdate(
        order_group_id="g", event_type="created", contracts_limit=15_000, ts_exch=EXCH, ts_recv=RECV
    )
    assert only_row(build(g), "order_groups") == ("g", "created", EXCH_US, RECV_US, 15_000)


def test_strikes_reach_the_market_row_and_none_never_erases_them() -> None:
    """metadata_updated's strikes land on the market (exact text) and in its lifecycle detail;
    a later MarketMeta or lifecycle event that does not know them (None) leaves them be."""
    life = MarketLifecycle(
        ticker="T", event_type="metadata_updated", strike_type="between", floor_strike="3.25",
        cap_strike="3.5", ts_exch=EXCH, ts_recv=RECV,
    )  # fmt: skip
    meta = MarketMeta(
        ticker="T", event_ticker="E", series_ticker="S", title="Ti", yes_sub_title="y", no_sub_title="n",
        status="active", ts_exch=EXCH + 1, ts_recv=RECV,
    )  # fmt: skip
    b = build(life, meta)
    (row,) = b.rows["lifecycle"]
    assert row[16] == '{"strike_type":"between","floor_strike":"3.25","cap_strike":"3.5"}'
    market = b.state[("markets", "T")]
    assert (market["strike_type"], market["floor_strike"], market["cap_strike"]) == ("between", "3.25", "3.5")
    assert market["title"] == "Ti"
    with_strike = msgspec.structs.replace(meta, floor_strike="100000", strike_type="greater")
    market = build(with_strike).state[("markets", "T")]
    assert (market["strike_type"], market["floor_strike"]) == ("greater", "100000")
    assert "cap_strike" not in market


def test_market_lifecycle_row_and_market_update() -> None:
    m = MarketLifecycle(
        ticker="T", event_type="created", event_ticker="E", open_ms=EXCH, close_ms=EXCH + 1,
        price_ranges=[PriceRange(100, 9900, 100)], title="Title", ts_exch=EXCH, ts_recv=RECV,
    )  # fmt: skip
    b = build(m)
    (row,) = b.rows["lifecycle"]
    assert row[:8] == ("T", "created", EXCH_US, RECV_US, "E", EXCH_US, EXCH_US + 1000, None)
    assert row[12] == "[[100,9900,100]]" and row[13] == "Title" and row[16] is None
    assert b.state == {
        ("markets", "T"): {
            "event_ticker": "E", "title": "Title", "open_ts": EXCH_US, "close_ts": EXCH_US + 1000,
            "price_ranges": "[[100,9900,100]]", "updated": EXCH_US,
        }
    }  # fmt: skip


def test_event_level_messages_go_to_lifecycle_and_events() -> None:
    ev = EventLifecycle(event_ticker="E", series_ticker="S", title="Ev", strike_ms=EXCH, ts_recv=RECV)
    fee = FeeUpdate(
        event_ticker="E", fee_type_override=None, fee_multiplier_ppm_override=None, ts_recv=RECV + 10**6
    )  # fmt: skip
    b = build(ev, fee)
    kinds = [(r[0], r[1]) for r in b.rows["lifecycle"]]
    assert kinds == [("E", "event_lifecycle"), ("E", "event_fee_update")]
    assert msgspec.json.decode(b.rows["lifecycle"][1][16]) == {
        "fee_type_override": None,
        "fee_multiplier_ppm_override": None,
    }
    events = b.state[("events", "E")]
    assert events["title"] == "Ev" and events["strike_ts"] == EXCH_US
    assert "fee_type_override" in events and events["fee_type_override"] is None  # None clears
    assert events["updated"] == RECV_US + 1000
    assert b.state[("series", "S")] == {"updated": RECV_US}


def test_state_upserts_apply_in_message_order_whatever_the_grouping() -> None:
    meta = MarketMeta(
        ticker="T", event_ticker="E", series_ticker="S", title="Old", yes_sub_title="Y", no_sub_title="N",
        status="active", ts_recv=RECV,
    )  # fmt: skip
    life = MarketLifecycle(ticker="T", event_type="created", title="Mid", ts_recv=RECV + 1000)
    meta2 = msgspec.structs.replace(meta, title="New", ts_recv=RECV + 2000)
    b = build(meta, life, meta2)
    groups = b.upsert_groups()
    markets = [g for g in groups if g[0] == "markets"]
    assert len(markets) == 1
    _, cols, rows = markets[0]
    (row,) = rows
    assert dict(zip(("ticker", *cols), row, strict=True))["title"] == "New"
    b = build(meta, meta2, life)
    (row,) = next(g for g in b.upsert_groups() if g[0] == "markets")[2]
    assert "Mid" in row


def test_series_insert_if_missing_keeps_first_update_time() -> None:
    meta = MarketMeta(
        ticker="T", event_ticker="E", series_ticker="S", title="", yes_sub_title="", no_sub_title="",
        status="active", category="Sports", ts_recv=RECV,
    )  # fmt: skip
    ev = EventLifecycle(event_ticker="E", series_ticker="S", title="Ev", ts_recv=RECV + 5000)
    b = build(meta, ev)
    assert b.state[("series", "S")] == {"category": "Sports", "updated": RECV_US}


def test_rows_have_every_column_and_integer_times() -> None:
    b = BatchBuilder({})
    for m in mixed(400, seed=3):
        b.add(m)
    for table, rows in b.rows.items():
        spec = APPEND[table]
        ts_idx = [i for i, c in enumerate(spec.columns) if c in spec.ts_columns]
        for row in rows:
            assert len(row) == len(spec.columns)
            for i in ts_idx:
                assert row[i] is None or type(row[i]) is int, (table, spec.columns[i])
    for table, cols, rows in b.upsert_groups():
        assert set(cols) <= set(STATE[table].columns)
        assert all(type(r[-1]) is int for r in rows)


@pytest.mark.parametrize("seed", [1, 2])
def test_expected_model_dedups_the_synthetic_duplicates(seed: int) -> None:
    msgs = mixed(3000, seed=seed, duplicates=0.1)
    exp = expected_tables(msgs)
    deltas = [m for m in msgs if isinstance(m, BookDelta)]
    assert len(exp["book_deltas"]) == len({(m.conn, m.sid, m.xseq) for m in deltas}) < len(deltas)
    trades = [m for m in msgs if isinstance(m, Trade)]
    assert len(exp["trades"]) == len({m.trade_id for m in trades}) < len(trades)


def test_mappers_cover_exactly_the_stored_kinds() -> None:
    assert {cls.__struct_config__.tag for cls in MAPPERS} == STORED_KINDS
