"""wire.convert: every served bus kind in the API's units (exact strings, never a float), total
over any int64 time, and refusing what the API does not serve."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.gateway import wire
from shared.messages import (
    INT64_MAX,
    INT64_MIN,
    BookState,
    Depth,
    Fill,
    Gap,
    Heartbeat,
    MarketLifecycle,
    PollSnapshot,
    PriceRange,
    Signal,
    TopOfBook,
    Trade,
    WorkerEvent,
)
from tests.support.messages import book_delta, book_meta, ticker_msg

NS = 1_764_772_826_123_456_789  # 2025-12-03T14:40:26.123456789Z


def floats_in(value: Any) -> list[Any]:
    if isinstance(value, float):
        return [value]
    if isinstance(value, dict):
        return [f for v in value.values() for f in floats_in(v)]
    if isinstance(value, list):
        return [f for v in value for f in floats_in(v)]
    return []


def test_top_of_book_in_api_units() -> None:
    m = TopOfBook(
        ticker="KX-A",
        xseq=7,
        valid=True,
        yes_bid=4300,
        yes_bid_size=2500,
        yes_ask=4401,
        yes_ask_size=1,
        no_bid=5599,
        no_ask=5700,
        mid_x2=8701,
        spread=101,
        ts_recv=NS,
        ts_exch=1_764_772_826_123,
    )
    out = wire.convert(m)
    assert out == {
        "ticker": "KX-A",
        "xseq": 7,
        "valid": True,
        "yes_bid": "0.4300",
        "yes_bid_size_fp": "25.00",
        "yes_ask": "0.4401",
        "yes_ask_size_fp": "0.01",
        "no_bid": "0.5599",
        "no_ask": "0.5700",
        "mid": "0.43505",
        "spread": "0.0101",
        "ts_recv": "2025-12-03T14:40:26.123456Z",
        "ts_recv_ns": str(NS),
        "ts_exch": "2025-12-03T14:40:26.123000Z",
        "ts_exch_ms": 1_764_772_826_123,
    }


def test_empty_side_is_null() -> None:
    m = TopOfBook(
        ticker="KX-A",
        xseq=1,
        valid=False,
        yes_bid=None,
        yes_bid_size=0,
        yes_ask=100,
        yes_ask_size=5,
        no_bid=9900,
        no_ask=None,
        mid_x2=None,
        spread=None,
    )
    out = wire.convert(m)
    assert out["yes_bid"] is None and out["mid"] is None and out["spread"] is None and out["no_ask"] is None
    assert out["ts_exch"] is None and out["ts_exch_ms"] is None


def test_trade_signal_depth_bookstate_gap() -> None:
    t = wire.convert(
        Trade(trade_id="t1", ticker="KX-A", yes_price=4300, no_price=5700, count=1050, taker_side="no")
    )
    assert (t["yes_price"], t["no_price"], t["count_fp"], t["source"]) == ("0.4300", "0.5700", "10.50", "ws")
    s = wire.convert(
        Signal(
            ticker="KX-A",
            strategy="sb",
            side="yes",
            price=4300,
            size=200,
            fair_ppm=512_345,
            edge=12_345,
            fees=-5,
        )
    )
    assert (s["price"], s["size_fp"], s["fair"], s["edge"], s["fees"]) == (
        "0.4300",
        "2.00",
        "0.512345",
        "0.012345",
        "-0.000005",
    )
    d = wire.convert(
        Depth(ticker="KX-A", xseq=3, valid=True, yes=[(4300, 2500), (4200, 1)], no=[(5600, 100)])
    )
    assert d["yes"] == [["0.4300", "25.00"], ["0.4200", "0.01"]] and d["no"] == [["0.5600", "1.00"]]
    # A connection id is the connector's start in ns: past 2**53, so a string a browser keeps exact.
    conn = 1_764_772_826_123_456_789
    b = wire.convert(BookState(ticker="KX-A", valid=False, reason="seq_gap", conn=conn, sid=2, xseq=9))
    assert (b["valid"], b["reason"], b["sid"], b["conn"]) == (False, "seq_gap", 2, str(conn))
    g = wire.convert(
        Gap(
            conn=conn,
            sid=2,
            expected=5,
            received=9,
            tickers=["A", "B"],
            reason="seq",
            detected_ms=1000,
            recovered_ms=None,
        )
    )
    assert (
        g["tickers"] == ["A", "B"]
        and g["conn"] == str(conn)
        and g["detected"] == "1970-01-01T00:00:01.000000Z"
        and g["recovered"] is None
    )


def test_ticker_poll_lifecycle_meta_health() -> None:
    t = wire.convert(ticker_msg("KX-A", volume=123_456))
    assert (t["last_price"], t["yes_bid"], t["volume_fp"], t["dollar_volume"]) == (
        "0.4300",
        "0.4200",
        "1234.56",
        6,
    )
    p = wire.convert(
        PollSnapshot(
            ticker="KX-A",
            status="active",
            yes_bid=None,
            yes_ask=4400,
            yes_bid_size=0,
            yes_ask_size=3,
            last_price=None,
            volume=0,
            open_interest=1,
        )
    )
    assert (p["yes_bid"], p["yes_ask"], p["open_interest_fp"]) == (None, "0.4400", "0.01")
    lc = wire.convert(
        MarketLifecycle(
            ticker="KX-A",
            event_type="settled",
            settlement_value=10_000,
            price_ranges=[PriceRange(0, 10_000, 100)],
        )
    )
    assert lc["settlement_value"] == "1.0000" and lc["price_ranges"] == [
        {"start": "0.0000", "end": "1.0000", "step": "0.0100"}
    ]
    meta = wire.convert(book_meta("KX-A", fee_multiplier_ppm=1_500_000))
    assert meta["fee_multiplier"] == "1.500000" and meta["status"] == "active"
    hb = wire.convert(Heartbeat(worker="orderbook", pid=1, uptime_ms=5, ready=True, counters={"books": 3}))
    assert hb["counters"] == {"books": 3}
    assert wire.convert(WorkerEvent(worker="w", event="started"))["event"] == "started"


@pytest.mark.parametrize(
    "msg",
    [
        Fill(
            trade_id="t", order_id="o", ticker="KX-A", is_taker=True, side="yes", yes_price=1, count=1, fee=0
        ),
        book_delta("KX-A", 1, 4300, 100),
    ],
)
def test_private_and_raw_book_kinds_are_not_served(msg: Any) -> None:
    with pytest.raises(wire.Unsupported):
        wire.convert(msg)
    assert type(msg).__struct_config__.tag not in wire.SERVED_KINDS


@given(st.integers(INT64_MIN, INT64_MAX), st.integers(INT64_MIN, INT64_MAX))
def test_conversion_is_total_over_any_int64_time_and_price(ts: int, value: int) -> None:
    m = TopOfBook(
        ticker="X",
        xseq=value,
        valid=True,
        yes_bid=value,
        yes_bid_size=value,
        yes_ask=value,
        yes_ask_size=value,
        no_bid=value,
        no_ask=value,
        mid_x2=value,
        spread=value,
        ts_recv=ts,
        ts_exch=ts,
    )
    out = wire.convert(m)
    assert not floats_in(out)
    msgspec.json.encode(out)  # JSON-able as it is
    assert out["ts_recv_ns"] == str(ts) and out["ts_exch_ms"] == ts
    iso = out["ts_exch"]
    assert iso is None or (iso.endswith("Z") and len(iso) == 27)


def test_iso_edges() -> None:
    assert wire.iso_ns(0) == "1970-01-01T00:00:00.000000Z"
    assert wire.iso_ns(-1) == "1969-12-31T23:59:59.999999Z"
    assert wire.iso_ms(INT64_MAX) is None and wire.iso_ms(None) is None
    assert wire.iso_ms(-62_135_596_800_000) == "0001-01-01T00:00:00.000000Z"


def _iso_by_datetime(us: int) -> str | None:
    try:
        at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)
        return at.isoformat(timespec="microseconds")[:26] + "Z"
    except OverflowError:
        return None


@given(st.one_of(st.integers(INT64_MIN, INT64_MAX), st.integers(-62_135_596_800_001, 253_402_300_800_000)))
def test_iso_times_are_datetimes_own(ms: int) -> None:
    """The remembered seconds write what datetime writes, at any int64 and across the edges of
    what ISO-8601 holds (ns, truncated to the microsecond; ms)."""
    assert wire.iso_ms(ms) == _iso_by_datetime(ms * 1000)
    for ns in (ms, ms * 1_000_000 + 999_999, ms * 1_000_000 - 1):
        if INT64_MIN <= ns <= INT64_MAX:
            assert wire.iso_ns(ns) == _iso_by_datetime(ns // 1000)
