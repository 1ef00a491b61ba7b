"""Wire -> bus conversion: exact integer units, use_yes_price normalised, bad values refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.kalshi import parse, rest, ws
from shared.messages import PriceRange
from shared.units import UnitError

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "kalshi"
TS = 1_700_000_000_123_456_789


def frame(name: str, **patch: Any) -> Any:
    raw = json.loads((FIX / name).read_bytes())
    for key, value in patch.items():
        raw["msg"][key] = value
    return ws.FRAME_DECODER.decode(json.dumps(raw))


def test_delta_units_and_stamps() -> None:
    d = parse.delta(frame("ws_orderbook_delta.json"), 77, TS)
    assert (d.ticker, d.side, d.price, d.delta) == ("KXNBAGAME-26NOV03LALBOS-LAL", "yes", 4300, -2500)
    assert (d.conn, d.sid, d.xseq) == (77, 1, 5)
    assert d.ts_exch == 1793749267412 and d.ts_recv == TS
    assert d.market_id == "3f0c9a62-1c1e-4c55-9a4e-2b7f0d1e8a11"


def test_three_decimal_price_is_the_same_level() -> None:
    d = parse.delta(frame("ws_orderbook_delta_spec.json"), 1, TS)
    assert (d.price, d.delta) == (9600, -5400)


def test_use_yes_price_no_side_becomes_no_price() -> None:
    f = frame("ws_orderbook_delta.json", side="no", price_dollars="0.7000")
    assert parse.delta(f, 1, TS, yes_price=True).price == 3000
    assert parse.delta(f, 1, TS, yes_price=False).price == 7000
    yes = frame("ws_orderbook_delta.json", price_dollars="0.7000")
    assert parse.delta(yes, 1, TS, yes_price=True).price == 7000  # YES side never flips


def test_snapshot_levels_sorted_and_flipped() -> None:
    s = parse.snapshot(frame("ws_orderbook_snapshot.json"), 9, TS)
    assert s.yes == [(800, 30000), (2200, 33300)]
    assert s.no == [(5400, 2000), (5600, 14600)]
    assert (s.conn, s.sid, s.xseq, s.source) == (9, 2, 2, "ws")
    # The same book as Kalshi sends it with use_yes_price: NO bids at 0.54/0.56 appear at 0.46/0.44.
    yp = frame("ws_orderbook_snapshot.json", no_dollars_fp=[["0.4400", "146.00"], ["0.4600", "20.00"]])
    assert parse.snapshot(yp, 9, TS, yes_price=True).no == s.no


def test_snapshot_empty_side_and_sending_ts() -> None:
    s = parse.snapshot(frame("ws_orderbook_snapshot_yes_only.json"), 1, TS)
    assert s.yes == [(4100, 1000), (4200, 550)] and s.no == []
    assert s.ts_exch == 1793749267400


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("price_dollars", "0.43001"),  # finer than $0.0001
        ("price_dollars", "1.0000"),  # not a bid
        ("price_dollars", "0"),
        ("price_dollars", "-0.43"),
        ("price_dollars", "4.3e-1"),
        ("delta_fp", "1.005"),  # finer than 0.01 contract
        ("delta_fp", "abc"),
    ],
)
def test_delta_bad_units_raise(field: str, value: str) -> None:
    with pytest.raises(UnitError):
        parse.delta(frame("ws_orderbook_delta.json", **{field: value}), 1, TS)


def test_snapshot_repeated_level_raises() -> None:
    f = frame("ws_orderbook_snapshot.json", yes_dollars_fp=[["0.08", "1.00"], ["0.0800", "2.00"]])
    with pytest.raises(UnitError):
        parse.snapshot(f, 1, TS)


def test_ticker() -> None:
    t = parse.ticker(frame("ws_ticker.json"), TS)
    assert (t.price, t.yes_bid, t.yes_ask) == (4800, 4500, 5300)
    assert (t.yes_bid_size, t.yes_ask_size, t.last_trade_size) == (30000, 15000, 2500)
    assert (t.volume, t.open_interest, t.dollar_volume, t.dollar_open_interest) == (
        3389600,
        2042200,
        16948,
        10211,
    )
    assert t.ts_exch == 1669149841000


def test_ticker_without_trade_and_ts_ms() -> None:
    t = parse.ticker(frame("ws_ticker_no_trade_yet.json"), TS)
    assert t.price is None
    assert t.ts_exch == 1767555600 * 1000  # seconds fallback
    empty = parse.ticker(frame("ws_ticker_no_trade_yet.json", yes_bid_dollars="", yes_ask_dollars=""), TS)
    assert (empty.yes_bid, empty.yes_ask) == (0, 10_000)


def test_memo_caches_stay_small_over_a_long_run() -> None:
    """A week of tickers brings millions of distinct running totals (volume, open interest):
    they are not memoised, and every memo stays within its bound however many strings it sees.
    (Remembering them filled a 200,000-entry cache: the soak's connector grew 41 MB.)"""
    from shared.kalshi import numbers

    for i in range(3 * numbers._CACHE_LIMIT):
        text = f"{1_000_000 + i}.00"
        t = parse.ticker(frame("ws_ticker.json", volume_fp=text, open_interest_fp=text), TS)
        assert t.volume == t.open_interest == (1_000_000 + i) * 100
        assert text not in numbers._counts
        assert numbers.signed_count(f"-{i}.00") == -i * 100
        assert numbers.price(f"0.{i % 10_000:04d}") == i % 10_000
    for memo in (numbers._prices, numbers._counts, numbers._signed, numbers._any_prices):
        assert len(memo) <= numbers._CACHE_LIMIT


def test_trade() -> None:
    t = parse.trade(frame("ws_trade.json"), TS)
    assert (t.trade_id, t.ticker) == ("d91bc706-ee49-470d-82d8-11418bda6fed", "HIGHNY-22DEC23-B53.5")
    assert (t.yes_price, t.no_price, t.count, t.taker_side, t.is_block_trade) == (
        3600,
        6400,
        13600,
        "no",
        False,
    )
    assert t.ts_exch == 1669149841000


def test_trade_side_fallbacks() -> None:
    old = frame("ws_trade.json", taker_outcome_side=None, taker_book_side=None, taker_side="yes")
    assert parse.trade(old, TS).taker_side == "yes"
    book = frame("ws_trade.json", taker_outcome_side=None, taker_side=None, taker_book_side="bid")
    assert parse.trade(book, TS).taker_side == "yes"
    none = frame("ws_trade.json", taker_outcome_side=None, taker_side=None, taker_book_side=None)
    with pytest.raises(UnitError):
        parse.trade(none, TS)


def test_fill_spec_example() -> None:
    f = parse.fill(frame("ws_fill.json"), TS)
    assert (f.trade_id, f.order_id, f.ticker) == (
        "d91bc706-ee49-470d-82d8-11418bda6fed",
        "ee587a1c-8b87-4dcf-b721-9f6f790619fa",
        "HIGHNY-22DEC23-B53.5",
    )
    # deprecated ``side`` stands in for the absent outcome_side; no fee_cost means no fee
    assert (f.is_taker, f.side, f.action) == (True, "yes", "buy")
    assert (f.yes_price, f.count, f.fee, f.post_position) == (7500, 27800, 0, 50000)
    assert f.client_order_id is None
    assert f.ts_exch == 1671899397000 and f.ts_recv == TS
    assert f.topic() == "fill.HIGHNY-22DEC23-B53.5"


def test_fill_current_fields_exact() -> None:
    f = parse.fill(frame("ws_fill_outcome_side.json"), TS)
    assert (f.is_taker, f.side, f.action, f.client_order_id) == (False, "no", "sell", "my-order-7")
    assert (f.yes_price, f.count, f.fee, f.post_position) == (4300, 1250, 87_500, -3750)
    assert f.ts_exch == 1793749267412


def test_fill_side_fallbacks() -> None:
    book = frame("ws_fill_outcome_side.json", outcome_side=None, side=None, book_side="bid")
    assert parse.fill(book, TS).side == "yes"
    seconds = frame("ws_fill_outcome_side.json", ts_ms=None)
    assert parse.fill(seconds, TS).ts_exch == 1793749267000
    none = frame("ws_fill_outcome_side.json", outcome_side=None, side=None, book_side=None)
    with pytest.raises(UnitError):
        parse.fill(none, TS)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("yes_price_dollars", "0.43005"),
        ("count_fp", "1.005"),
        ("count_fp", "-1.00"),
        ("fee_cost", "0.0000001"),
        ("fee_cost", "-0.01"),
        ("post_position_fp", "1.001"),
    ],
)
def test_fill_inexact_or_bad_values_refused(field: str, value: str) -> None:
    with pytest.raises(UnitError):
        parse.fill(frame("ws_fill_outcome_side.json", **{field: value}), TS)


def test_market_position_spec_example() -> None:
    p = parse.market_position(frame("ws_market_position.json"), TS)
    assert p.ticker == "FED-23DEC-T3.00"
    assert (p.position, p.volume) == (10_000, 1_500)
    assert (p.position_cost, p.realized_pnl, p.fees_paid) == (50_000_000, 10_000_000, 1_000_000)
    assert p.ts_exch is None and p.ts_recv == TS
    assert p.topic() == "position.FED-23DEC-T3.00"


def test_market_position_short_and_loss_are_signed() -> None:
    p = parse.market_position(
        frame("ws_market_position.json", position_fp="-12.50", realized_pnl_dollars="-0.250000"), TS
    )
    assert (p.position, p.realized_pnl) == (-1250, -250_000)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("position_fp", "1.001"),
        ("position_cost_dollars", "0.0000001"),
        ("fees_paid_dollars", "x"),
        ("volume_fp", "-1.00"),
    ],
)
def test_market_position_inexact_values_refused(field: str, value: str) -> None:
    with pytest.raises(UnitError):
        parse.market_position(frame("ws_market_position.json", **{field: value}), TS)


def test_lifecycle_created() -> None:
    m = parse.lifecycle(frame("ws_market_lifecycle_created.json"), TS)
    assert (m.ticker, m.event_type, m.event_ticker) == ("INXD-23SEP14-B4487", "created", "INXD-23SEP14")
    assert (m.open_ms, m.close_ms) == (1694635200000, 1694721600000)
    assert m.price_ranges == [PriceRange(0, 10000, 100)]
    assert m.title == "S&P 500 closes up by 0.02% or more"
    assert (m.yes_sub_title, m.no_sub_title) == ("S&P 500 closes up 0.02%+", "S&P 500 closes up <0.02%")


def test_lifecycle_determined_settled_paused() -> None:
    d = parse.lifecycle(frame("ws_market_lifecycle_determined.json"), TS)
    assert (d.result, d.determination_ms, d.settlement_value, d.ts_exch) == (
        "yes",
        1793760000000,
        10000,
        1793760000123,
    )
    s = parse.lifecycle(frame("ws_market_lifecycle_settled.json"), TS)
    assert (s.event_type, s.settled_ms, s.price_ranges) == ("settled", 1793763600000, None)
    p = parse.lifecycle(frame("ws_market_lifecycle_deactivated.json"), TS)
    assert p.is_deactivated is True
    md = parse.lifecycle(frame("ws_market_lifecycle_metadata_updated.json"), TS)
    assert md.yes_sub_title == "above $95,000"
    plu = parse.lifecycle(frame("ws_market_lifecycle_price_level_structure_updated.json"), TS)
    assert plu.price_ranges == [PriceRange(0, 10000, 10)]


def test_event_lifecycle_and_fees() -> None:
    e = parse.event_lifecycle(frame("ws_event_lifecycle.json"), TS)
    assert (e.event_ticker, e.series_ticker, e.collateral_return_type) == (
        "KXQUICKSETTLE-26JAN25H2150",
        "KXQUICKSETTLE",
        "MECNET",
    )
    assert e.strike_ms == 1769377800000
    f = parse.fee_update(frame("ws_event_fee_update.json"), TS)
    assert (f.fee_type_override, f.fee_multiplier_ppm_override) == ("quadratic", 500_000)
    c = parse.fee_update(frame("ws_event_fee_update_cleared.json"), TS)
    assert (c.fee_type_override, c.fee_multiplier_ppm_override) == (None, None)


@pytest.mark.parametrize(
    ("raw", "ppm"),
    [
        (b"1", 1_000_000),
        (b"0.5", 500_000),
        (b"1.0", 1_000_000),
        (b"0.25", 250_000),
        (b"null", None),
        (None, None),
    ],
)
def test_fee_multiplier_exact(raw: bytes | None, ppm: int | None) -> None:
    assert parse.fee_multiplier_ppm(raw) == ppm


def test_fee_multiplier_finer_than_ppm_refused() -> None:
    with pytest.raises(UnitError):
        parse.fee_multiplier_ppm(b"0.0000001")
    with pytest.raises(UnitError):
        parse.fee_multiplier_ppm(b"-1")


def test_rfc3339_exact_ms() -> None:
    assert parse.rfc3339_ms("2026-11-03T23:41:07Z") == 1793749267000
    assert parse.rfc3339_ms("2026-11-03T23:41:07.412Z") == 1793749267412
    assert parse.rfc3339_ms("2026-11-03T18:41:07-05:00") == 1793749267000
    assert parse.rfc3339_ms("") is None and parse.rfc3339_ms(None) is None
    with pytest.raises(UnitError):
        parse.rfc3339_ms("yesterday")


def test_market_meta_from_rest() -> None:
    page = msgspec.json.decode((FIX / "rest_markets_page.json").read_bytes(), type=rest.MarketsPage)
    lal, bos = page.markets
    meta = parse.market_meta(lal, TS, series_ticker="KXNBAGAME", category="Sports", fee_type="quadratic")
    assert (meta.ticker, meta.event_ticker, meta.series_ticker, meta.category) == (
        "KXNBAGAME-26NOV03LALBOS-LAL",
        "KXNBAGAME-26NOV03LALBOS",
        "KXNBAGAME",
        "Sports",
    )
    assert meta.status == "active" and meta.title == "Los Angeles L at Boston Winner?"
    assert meta.open_ms == 1792591200000 and meta.close_ms == 1793764800000
    assert meta.expiration_ms == 1793761200000
    assert meta.price_ranges == [PriceRange(0, 10000, 100)]
    assert meta.fee_multiplier_ppm == 1_000_000 and meta.fee_type == "quadratic"
    tapered = parse.market_meta(bos, TS, series_ticker="KXNBAGAME")
    assert tapered.price_ranges == [
        PriceRange(0, 1000, 10),
        PriceRange(1000, 9000, 100),
        PriceRange(9000, 10000, 10),
    ]
    assert tapered.expiration_ms == 1794960000000  # latest_expiration_time when no expected one


def test_bad_price_range_refused() -> None:
    with pytest.raises(UnitError):
        parse.price_ranges([ws.PriceRangeWire("0.5", "0.4", "0.01")])
    with pytest.raises(UnitError):
        parse.price_ranges([ws.PriceRangeWire("0", "1", "0")])


@given(st.integers(min_value=1, max_value=9999), st.booleans())
def test_memoised_price_matches_direct_parse(units: int, short: bool) -> None:
    text = f"0.{units:04d}"
    if short:
        text = text.rstrip("0")
    assert parse.book_price(text) == units
    assert parse.book_price(text) == units  # second time from the cache


@given(st.integers(min_value=-(10**9), max_value=10**9))
def test_signed_count_roundtrip(hundredths: int) -> None:
    sign = "-" if hundredths < 0 else ""
    text = f"{sign}{abs(hundredths) // 100}.{abs(hundredths) % 100:02d}"
    assert parse.signed_count(text) == hundredths


def test_metadata_updated_carries_its_strikes_exactly() -> None:
    # The December AsyncAPI's example: strikes are JSON numbers, kept as their text.
    raw = (
        b'{"type":"market_lifecycle_v2","sid":13,"seq":5,"msg":{"event_type":"metadata_updated",'
        b'"market_ticker":"KXBTC-25APR30-T0915-B95000","strike_type":"between","floor_strike":95000,'
        b'"cap_strike":95250.125}}'
    )
    f = ws.FRAME_DECODER.decode(raw)
    assert isinstance(f, ws.MarketLifecycleFrame)
    m = parse.lifecycle(f, 1)
    assert (m.strike_type, m.floor_strike, m.cap_strike) == ("between", "95000", "95250.125")
    bare = ws.FRAME_DECODER.decode(raw.replace(b',"floor_strike":95000,"cap_strike":95250.125', b""))
    assert parse.lifecycle(bare, 1).floor_strike is None  # type: ignore[arg-type]
    with pytest.raises(parse.UnitError):
        parse.lifecycle(
            ws.FRAME_DECODER.decode(raw.replace(b'"floor_strike":95000', b'"floor_strike":"x"')), 1
        )  # type: ignore[arg-type]


def test_a_delta_of_ones_own_order_keeps_client_order_id_and_subaccount() -> None:
    raw = (
        b'{"type":"orderbook_delta","sid":2,"seq":3,"msg":{"market_ticker":"M","market_id":"i",'
        b'"price_dollars":"0.96","delta_fp":"-54.00","side":"yes","client_order_id":"mine-1","subaccount":3}}'
    )
    f = ws.FRAME_DECODER.decode(raw)
    assert isinstance(f, ws.OrderbookDelta)
    d = parse.delta(f, 1, 1)
    assert (d.client_order_id, d.subaccount) == ("mine-1", 3)


def test_rest_trade_is_a_backfilled_bus_trade() -> None:
    from shared.kalshi.rest_models import RestTrade

    body = RestTrade(
        trade_id="r1", ticker="T", count_fp="2.50", yes_price_dollars="0.4300", no_price_dollars="0.5700",
        created_time="2026-11-03T23:41:07.250Z", taker_book_side="ask",
    )  # fmt: skip
    t = parse.rest_trade(body, 99)
    assert (t.trade_id, t.ticker, t.yes_price, t.no_price, t.count) == ("r1", "T", 4300, 5700, 250)
    assert (t.taker_side, t.source, t.ts_exch, t.ts_recv) == ("no", "rest", 1793749267250, 99)
    with pytest.raises(UnitError):
        parse.rest_trade(msgspec.structs.replace(body, taker_book_side=None), 99)
    with pytest.raises(UnitError):
        parse.rest_trade(msgspec.structs.replace(body, created_time=""), 99)
