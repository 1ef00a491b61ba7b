"""Numbers out of range: every one is a counted bad frame, none escapes at bus encode.

The frames are the ones that crashed the connector (an OverflowError at bus encode): a count
of 10^29, a ``ts_ms`` of 2^70, a ticker ``ts`` of 10^17 s, a trade of 10^23 contracts.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.kalshi import envelope, parse, ws
from shared.messages import BATCH_DECODER, BATCH_ENCODER, INT64_MAX, BookDelta, Message

from .test_connector_support import TS_MS, A, B, Script, booted, counted, delta, kinds

BIG_COUNT = "1" + "0" * 29 + ".00"  # 10^29 contracts
BIG_TRADE = "1" + "0" * 23 + ".00"  # 10^23 contracts


def encodes(out: list[Message]) -> None:
    """What the session produced goes on the bus and comes back unchanged."""
    assert BATCH_DECODER.decode(BATCH_ENCODER.encode(out)) == out


def ranged(sc: Script) -> int:
    return counted(sc.s, "bad_frames", "range")


def test_delta_of_ten_to_the_29_contracts_is_a_gap_of_its_market_only() -> None:
    sc, sid = booted()
    before = ranged(sc)
    out = sc.feed(delta(sid, 3, A, "0.40", BIG_COUNT), delta(sid, 4, B, "0.40", "1.00"))
    encodes(out)
    assert kinds(out) == ["bookstate", "gap", "delta"]
    assert out[1].reason == "bad_delta" and out[1].tickers == [A]  # type: ignore[union-attr]
    assert ranged(sc) - before == 1
    assert sc.s.broken == ""


def test_delta_ts_ms_of_two_to_the_70_is_a_gap_of_its_market_and_keeps_the_sequence() -> None:
    sc, sid = booted()
    before = ranged(sc)
    bad = delta(sid, 3, A, "0.40", "1.00")
    bad["msg"]["ts_ms"] = 2**70
    out = sc.feed(bad, delta(sid, 4, B, "0.40", "1.00"))
    encodes(out)
    # The frame failed its decode yet held seq 3: B's delta is in order, A alone is broken.
    assert kinds(out) == ["bookstate", "gap", "delta"]
    assert out[1].tickers == [A] and out[1].reason == "bad_delta"  # type: ignore[union-attr]
    assert ranged(sc) - before == 1


def test_delta_seq_out_of_range_is_dropped_and_the_stream_goes_on() -> None:
    sc, sid = booted()
    before = ranged(sc)
    out = sc.feed(
        delta(sid, 2**70, A, "0.40", "1.00"),
        delta(sid, -1, A, "0.40", "1.00"),
        delta(sid, 3, B, "0.40", "1.00"),
    )
    encodes(out)
    assert kinds(out) == ["delta"]
    assert ranged(sc) - before == 2


def test_delta_with_an_unreadable_market_makes_the_next_frame_a_sid_gap() -> None:
    sc, sid = booted()
    bad = delta(sid, 3, A, "0.40", "1.00")
    bad["msg"]["market_ticker"] = 7
    bad["msg"]["ts_ms"] = 2**70
    out = sc.feed(bad, delta(sid, 4, B, "0.40", "1.00"))
    encodes(out)
    gaps = [m for m in out if m.kind == "gap"]
    assert len(gaps) == 1 and gaps[0].tickers == [A, B]  # type: ignore[attr-defined]


def test_level_past_int64_is_a_gap_not_a_wrapped_size() -> None:
    sc, sid = booted()
    most = "92233720368547758.07"  # INT64_MAX hundredths
    assert parse.count(most) == INT64_MAX
    before = ranged(sc)
    out = sc.feed(delta(sid, 3, A, "0.41", most), delta(sid, 4, A, "0.41", "1.00"))
    encodes(out)
    assert kinds(out) == ["delta", "bookstate", "gap"]
    assert isinstance(out[0], BookDelta) and out[0].delta == INT64_MAX
    assert ranged(sc) - before == 1


def ticker_frame(sid: int, **msg: Any) -> dict[str, Any]:
    return {"type": "ticker", "sid": sid, "msg": {"market_ticker": A, "price_dollars": "0.41", **msg}}


def trade_frame(sid: int, **msg: Any) -> dict[str, Any]:
    base = {
        "trade_id": "t1",
        "market_ticker": A,
        "yes_price_dollars": "0.41",
        "no_price_dollars": "0.59",
        "count_fp": "1.00",
        "taker_outcome_side": "yes",
        "ts": 1_790_000_000,
    }
    return {"type": "trade", "sid": sid, "msg": {**base, **msg}}


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(ticker_frame(2, ts=10**17), id="ticker-ts-1e17-s"),
        pytest.param(ticker_frame(2, ts_ms=2**70), id="ticker-ts_ms-2^70"),
        pytest.param(ticker_frame(2, volume_fp=BIG_COUNT), id="ticker-volume-1e29"),
        pytest.param(ticker_frame(2, dollar_volume=10**30), id="ticker-dollar-volume"),
        pytest.param(trade_frame(3, count_fp=BIG_TRADE), id="trade-1e23-contracts"),
        pytest.param(trade_frame(3, ts=-(10**17)), id="trade-ts-negative"),
        pytest.param(trade_frame(3, yes_price_dollars="9" * 300), id="trade-price-300-digits"),
    ],
)
def test_ticker_and_trade_out_of_range_counted_and_dropped(frame: dict[str, Any]) -> None:
    sc, _ = booted()
    before = ranged(sc)
    good = ticker_frame(2)
    out = sc.feed(frame, good)
    encodes(out)
    assert kinds(out) == ["ticker"]
    assert ranged(sc) - before == 1


def test_lifecycle_and_fee_numbers_out_of_range() -> None:
    sc, _ = booted()
    before = ranged(sc)
    units = counted(sc.s, "bad_frames", "units")
    lsid = sc.s.table.lifecycle.sid  # type: ignore[union-attr]

    def fee(multiplier: object) -> dict[str, Any]:
        return {
            "type": "event_fee_update",
            "sid": lsid,
            "msg": {"event_ticker": "E", "fee_multiplier_override": multiplier},
        }

    created = {"market_ticker": A, "event_type": "created", "open_ts": 10**17}
    frames = [
        {"type": "market_lifecycle_v2", "sid": lsid, "msg": created},
        fee(1e300),
        fee("Infinity"),
        fee(int("9" * 40)),
    ]
    raws = [json.dumps(f).encode() for f in frames]
    raws.append(json.dumps(fee(0)).replace(": 0}", ": 1e999999999}").encode())
    out = sc.feed(*raws)
    encodes(out)
    assert out == []
    assert ranged(sc) - before == 2  # the lifecycle open_ts and the 40-digit multiplier
    assert counted(sc.s, "bad_frames", "units") - units == 3


def test_nesting_past_the_decoder_depth_is_a_counted_bad_frame() -> None:
    sc, sid = booted()
    before = counted(sc.s, "bad_frames", "json")
    deep = b"[" * 50_000 + b"]" * 50_000
    out = sc.feed(
        b'{"type":"orderbook_delta","sid":%d,"seq":3,"junk":%s}' % (sid, deep),
        b'{"type":%s}' % deep,
        delta(sid, 3, A, "0.40", "1.00"),
    )
    assert kinds(out) == ["delta"]
    assert counted(sc.s, "bad_frames", "json") - before == 2


def test_wire_bounds_follow_what_kxfeed_derives() -> None:
    def fails(raw: dict[str, Any]) -> str:
        try:
            ws.FRAME_DECODER.decode(json.dumps(raw))
        except Exception as exc:
            return envelope.decode_failure(exc)
        return "ok"

    d = delta(1, INT64_MAX - 1, A, "0.4", "1")
    assert fails(d) == "ok"
    d["seq"] = INT64_MAX  # seq + 1 would not fit
    assert fails(d) == "range"
    d["seq"] = "3"
    assert fails(d) == "schema"
    assert fails(ticker_frame(1, ts=INT64_MAX // 1000)) == "ok"
    assert fails(ticker_frame(1, ts=INT64_MAX // 1000 + 1)) == "range"
    assert parse.seconds_to_ms(INT64_MAX // 1000) == INT64_MAX // 1000 * 1000 <= INT64_MAX
    assert TS_MS < INT64_MAX
