"""user_order and order_group_updates frames -> the bus's UserOrder / OrderGroupUpdate: exact
integer units from the spec's examples, side fallbacks, and every inexact or out-of-range
value refused (UnitError: the session counts the frame as unusable), never rounded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared.kalshi import parse, ws
from shared.kalshi.numbers import RangeError
from shared.messages import BATCH_DECODER, BATCH_ENCODER, OrderGroupUpdate, UserOrder
from shared.units import UnitError

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "kalshi"
TS = 1_700_000_000_123_456_789


def frame(name: str, *, drop: tuple[str, ...] = (), **patch: Any) -> Any:
    raw = json.loads((FIX / name).read_bytes())
    for key in drop:
        raw["msg"].pop(key)
    raw["msg"].update(patch)
    return ws.FRAME_DECODER.decode(json.dumps(raw))


def test_user_order_spec_example_exact() -> None:
    o = parse.user_order(frame("ws_user_order.json"), TS)
    assert isinstance(o, UserOrder)
    assert (o.order_id, o.ticker, o.status, o.side) == (
        "ee587a1c-8b87-4dcf-b721-9f6f790619fa",
        "FED-23DEC-T3.00",
        "resting",
        "yes",
    )
    assert (o.yes_price, o.fill_count, o.remaining_count, o.initial_count) == (3500, 0, 1000, 1000)
    assert (o.taker_fill_cost, o.maker_fill_cost, o.taker_fees, o.maker_fees) == (0, 0, 0, 0)
    assert (o.client_order_id, o.order_group_id, o.self_trade_prevention_type) == (
        "my-order-1",
        "og_123",
        "taker_at_cross",
    )
    assert (o.created_ms, o.expiration_ms, o.subaccount) == (1733047200000, 1733050800000, 0)
    assert o.ts_exch == 1733047200000  # no last update yet: its creation
    assert o.ts_recv == TS and o.topic() == "order.FED-23DEC-T3.00"
    (back,) = BATCH_DECODER.decode(BATCH_ENCODER.encode([o]))
    assert back == o


def test_user_order_after_fills_money_and_update_time() -> None:
    o = parse.user_order(
        frame(
            "ws_user_order.json",
            status="executed",
            fill_count_fp="10.00",
            remaining_count_fp="0.00",
            taker_fill_cost_dollars="3.500000",
            taker_fees_dollars="0.070001",
            maker_fees_dollars="-0.010000",
            last_updated_ts_ms=1733047260000,
            last_update_reason="fill",
        ),
        TS,
    )
    assert (o.status, o.fill_count, o.remaining_count) == ("executed", 1000, 0)
    assert (o.taker_fill_cost, o.taker_fees, o.maker_fees) == (3_500_000, 70_001, -10_000)
    assert o.ts_exch == 1733047260000 and o.last_update_reason == "fill"


def test_user_order_without_fee_fields_says_none_not_zero() -> None:
    o = parse.user_order(frame("ws_user_order.json", drop=("taker_fees_dollars", "maker_fees_dollars")), TS)
    assert (o.taker_fees, o.maker_fees) == (None, None)


def test_user_order_side_and_time_fallbacks() -> None:
    # Only the book side: ask is outcome NO. Only the deprecated RFC 3339 times.
    o = parse.user_order(
        frame(
            "ws_user_order.json",
            drop=("outcome_side", "side", "created_ts_ms", "expiration_ts_ms"),
            book_side="ask",
            last_update_time="2024-12-01T10:05:00Z",
        ),
        TS,
    )
    assert o.side == "no"
    assert (o.created_ms, o.expiration_ms, o.ts_exch) == (1733047200000, 1733050800000, 1733047500000)
    with pytest.raises(UnitError):
        parse.user_order(frame("ws_user_order.json", drop=("outcome_side", "side", "book_side")), TS)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("yes_price_dollars", "0.35001"),
        ("yes_price_dollars", ""),
        ("fill_count_fp", "1.005"),
        ("remaining_count_fp", "-1.00"),
        ("initial_count_fp", "x"),
        ("taker_fill_cost_dollars", "0.0000001"),
        ("maker_fees_dollars", "1e3"),
        ("created_time", "yesterday"),
    ],
)
def test_user_order_inexact_or_bad_values_refused(field: str, value: str) -> None:
    patch: dict[str, Any] = {field: value}
    drop = ("created_ts_ms",) if field == "created_time" else ()
    with pytest.raises(UnitError):
        parse.user_order(frame("ws_user_order.json", drop=drop, **patch), TS)


def test_user_order_amount_outside_int64_is_a_range_error() -> None:
    with pytest.raises(RangeError):
        parse.user_order(frame("ws_user_order.json", taker_fill_cost_dollars="9" * 19 + ".000000"), TS)


def test_order_group_update_spec_example_exact() -> None:
    g = parse.order_group(frame("ws_order_group_updates.json"), TS)
    assert isinstance(g, OrderGroupUpdate)
    assert (g.order_group_id, g.event_type, g.contracts_limit) == ("og_123", "limit_updated", 15_000)
    assert g.ts_exch == 1733047200000 and g.ts_recv == TS
    assert g.topic() == "ordergroup.og_123"
    (back,) = BATCH_DECODER.decode(BATCH_ENCODER.encode([g]))
    assert back == g


def test_order_group_event_without_a_limit() -> None:
    g = parse.order_group(
        frame("ws_order_group_updates.json", drop=("contracts_limit_fp",), event_type="reset"), TS
    )
    assert (g.event_type, g.contracts_limit) == ("reset", None)


@pytest.mark.parametrize("value", ["1.005", "-1.00", "x", "9" * 19 + ".00"])
def test_order_group_bad_limit_refused(value: str) -> None:
    with pytest.raises(UnitError):
        parse.order_group(frame("ws_order_group_updates.json", contracts_limit_fp=value), TS)
