"""The WS wire schema decodes every canonical Kalshi frame, ignores unknown fields and
tells unknown types from malformed frames."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from shared.kalshi import envelope, ws

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "kalshi"

EXPECTED = {
    "ws_orderbook_snapshot.json": ws.OrderbookSnapshot,
    "ws_orderbook_snapshot_yes_only.json": ws.OrderbookSnapshot,
    "ws_orderbook_delta.json": ws.OrderbookDelta,
    "ws_orderbook_delta_spec.json": ws.OrderbookDelta,
    "ws_ticker.json": ws.TickerFrame,
    "ws_ticker_no_trade_yet.json": ws.TickerFrame,
    "ws_trade.json": ws.TradeFrame,
    "ws_market_lifecycle_created.json": ws.MarketLifecycleFrame,
    "ws_market_lifecycle_price_level_structure_updated.json": ws.MarketLifecycleFrame,
    "ws_market_lifecycle_determined.json": ws.MarketLifecycleFrame,
    "ws_market_lifecycle_settled.json": ws.MarketLifecycleFrame,
    "ws_market_lifecycle_deactivated.json": ws.MarketLifecycleFrame,
    "ws_market_lifecycle_metadata_updated.json": ws.MarketLifecycleFrame,
    "ws_event_lifecycle.json": ws.EventLifecycleFrame,
    "ws_event_fee_update.json": ws.EventFeeUpdateFrame,
    "ws_event_fee_update_cleared.json": ws.EventFeeUpdateFrame,
    "ws_subscribed.json": ws.Subscribed,
    "ws_unsubscribed.json": ws.Unsubscribed,
    "ws_ok_update_subscription.json": ws.Ok,
    "ws_ok_list_subscriptions.json": ws.Ok,
    "ws_error_market_not_found.json": ws.Error,
    "ws_error_buffer_overflow.json": ws.Error,
    "ws_fill.json": ws.FillFrame,
    "ws_fill_outcome_side.json": ws.FillFrame,
    "ws_market_position.json": ws.MarketPositionFrame,
    "ws_user_order.json": ws.UserOrderFrame,
    "ws_order_group_updates.json": ws.OrderGroupFrame,
    "ws_rfq_created.json": ws.RfqCreated,
    "ws_rfq_deleted.json": ws.RfqDeleted,
    "ws_quote_created.json": ws.QuoteCreated,
    "ws_quote_accepted.json": ws.QuoteAccepted,
    "ws_quote_executed.json": ws.QuoteExecuted,
}


def load(name: str) -> bytes:
    return (FIX / name).read_bytes().strip()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_fixture_decodes_to_its_struct(name: str) -> None:
    frame = ws.FRAME_DECODER.decode(load(name))
    assert type(frame) is EXPECTED[name]


def test_every_ws_fixture_is_covered() -> None:
    files = {p.name for p in FIX.glob("ws_*.json") if not p.name.endswith(".golden.json")}
    assert files - set(EXPECTED) == {"ws_unknown_type.json"}


def test_delta_fields() -> None:
    f = ws.FRAME_DECODER.decode(load("ws_orderbook_delta.json"))
    assert isinstance(f, ws.OrderbookDelta)
    assert (f.sid, f.seq) == (1, 5)
    assert f.msg.market_ticker == "KXNBAGAME-26NOV03LALBOS-LAL"
    assert (f.msg.price_dollars, f.msg.delta_fp, f.msg.side, f.msg.ts_ms) == (
        "0.4300",
        "-25.00",
        "yes",
        1793749267412,
    )
    assert f.sending_ts_ms is None


def test_snapshot_missing_side_is_empty() -> None:
    f = ws.FRAME_DECODER.decode(load("ws_orderbook_snapshot_yes_only.json"))
    assert isinstance(f, ws.OrderbookSnapshot)
    assert f.msg.no_dollars_fp == []
    assert f.msg.yes_dollars_fp == [("0.41", "10.00"), ("0.4200", "5.50")]
    assert f.sending_ts_ms == 1793749267400


def test_ok_reply_shapes() -> None:
    upd = ws.FRAME_DECODER.decode(load("ws_ok_update_subscription.json"))
    assert isinstance(upd, ws.Ok) and isinstance(upd.msg, ws.OkMsg)
    assert (upd.id, upd.sid, upd.seq) == (123, 456, 222)
    lst = ws.FRAME_DECODER.decode(load("ws_ok_list_subscriptions.json"))
    assert isinstance(lst, ws.Ok) and isinstance(lst.msg, list)
    assert [(s.channel, s.sid) for s in lst.msg] == [("orderbook_delta", 1), ("ticker", 2), ("fill", 3)]


def test_errors_keep_code_sid_and_ticker() -> None:
    nf = ws.FRAME_DECODER.decode(load("ws_error_market_not_found.json"))
    assert isinstance(nf, ws.Error)
    assert (nf.id, nf.msg.code, nf.msg.market_ticker, nf.sid) == (127, 16, "INVALID-MARKET", None)
    of = ws.FRAME_DECODER.decode(load("ws_error_buffer_overflow.json"))
    assert isinstance(of, ws.Error)
    assert (of.id, of.sid, of.msg.code) == (0, 1, 25)
    assert of.msg.code in ws.TERMINAL_ERRORS


def test_unknown_fields_are_ignored() -> None:
    raw = json.loads(load("ws_orderbook_delta.json"))
    raw["brand_new"] = {"x": [1, 2]}
    raw["msg"]["another"] = "y"
    f = ws.FRAME_DECODER.decode(json.dumps(raw))
    assert isinstance(f, ws.OrderbookDelta) and f.msg.delta_fp == "-25.00"


def test_unknown_type_versus_malformed() -> None:
    with pytest.raises(msgspec.ValidationError):
        ws.FRAME_DECODER.decode(load("ws_unknown_type.json"))
    assert envelope.frame_type(load("ws_unknown_type.json")) == ("cfbenchmarks_value", 1, 42)
    assert envelope.frame_type(b"{not json") is None
    assert envelope.frame_type(b"[1, 2]") is None
    assert envelope.frame_type(b'{"type": 5}') is None
    assert envelope.frame_type(b'{"type":"x","sid":"7"}') == ("x", None, None)
    # Known type, wrong shape: still a known type (the caller counts it as a schema error).
    bad = b'{"type":"orderbook_delta","sid":1,"seq":"x","msg":{}}'
    with pytest.raises(msgspec.ValidationError):
        ws.FRAME_DECODER.decode(bad)
    assert envelope.frame_type(bad) == ("orderbook_delta", 1, None)  # seq not an int: reported as absent
    bad2 = b'{"type":"orderbook_delta","sid":1,"seq":2,"msg":{"market_ticker":"A"}}'
    with pytest.raises(msgspec.ValidationError):
        ws.FRAME_DECODER.decode(bad2)
    assert envelope.frame_type(bad2) == ("orderbook_delta", 1, 2)


def test_side_must_be_yes_or_no() -> None:
    raw = json.loads(load("ws_orderbook_delta.json"))
    raw["msg"]["side"] = "maybe"
    with pytest.raises(msgspec.ValidationError):
        ws.FRAME_DECODER.decode(json.dumps(raw))


def test_commands_encode_like_kalshi_examples() -> None:
    sub = ws.WsCommand(
        1, "subscribe", ws.SubscribeParams(channels=["orderbook_delta"], market_tickers=["A", "B"])
    )
    assert json.loads(ws.encode_command(sub)) == {
        "id": 1,
        "cmd": "subscribe",
        "params": {"channels": ["orderbook_delta"], "market_tickers": ["A", "B"]},
    }
    glob = ws.WsCommand(2, "subscribe", ws.SubscribeParams(channels=["market_lifecycle_v2"]))
    assert json.loads(ws.encode_command(glob))["params"] == {"channels": ["market_lifecycle_v2"]}
    yp = ws.WsCommand(
        3,
        "subscribe",
        ws.SubscribeParams(channels=["orderbook_delta"], market_tickers=["A"], use_yes_price=True),
    )
    assert json.loads(ws.encode_command(yp))["params"]["use_yes_price"] is True
    snap = ws.WsCommand(
        127, "update_subscription", ws.UpdateParams(sids=[456], action="get_snapshot", market_tickers=["M-1"])
    )
    assert json.loads(ws.encode_command(snap)) == {
        "id": 127,
        "cmd": "update_subscription",
        "params": {"sids": [456], "action": "get_snapshot", "market_tickers": ["M-1"]},
    }
    unsub = ws.WsCommand(124, "unsubscribe", ws.UnsubscribeParams(sids=[1, 2]))
    assert json.loads(ws.encode_command(unsub)) == {
        "id": 124,
        "cmd": "unsubscribe",
        "params": {"sids": [1, 2]},
    }
    assert json.loads(ws.encode_command(ws.WsCommand(3, "list_subscriptions"))) == {
        "id": 3,
        "cmd": "list_subscriptions",
    }
