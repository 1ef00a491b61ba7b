"""Private channels (fill, market_positions): subscribed only when asked for, carried exactly.

The golden replay ``ws_session_private.jsonl`` -> ``ws_session_private.golden.json`` is
the spec's fill and market_position examples plus a fill with every current field, one
with a fee finer than a micro-dollar (refused, counted) and a short position. Regenerate
after an intended change with ``KXFEED_REGEN_GOLDEN=1`` and review the diff.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.config import ConfigError, load_config
from shared.messages import Fill, MarketPosition, OrderGroupUpdate, UserOrder

from .test_connector_support import FIX, GOLDEN_MARKETS, Script, assert_golden, counted, kinds, replay

LAL, BOS = GOLDEN_MARKETS
PRIVATE = ("fill", "market_positions")


def test_private_channels_not_subscribed_unless_asked() -> None:
    sc = Script([LAL])
    channels = [ch for c in sc.commands() for ch in c["params"]["channels"]]
    assert channels == ["orderbook_delta", "ticker", "trade", "market_lifecycle_v2"]
    assert sc.s.table.private == {}


def test_private_channels_subscribed_globally_when_asked() -> None:
    sc = Script([LAL, BOS], private=PRIVATE)
    cmds = sc.commands()
    assert [c["params"] for c in cmds[2:]] == [{"channels": ["fill"]}, {"channels": ["market_positions"]}]
    sc.confirm(cmds)
    assert sc.s.subscribed()
    live = {d["channel"]: d for d in sc.s.table.describe()}
    assert live["fill"]["sid"] == sc.sids["fill"][0] and live["fill"]["markets"] == []
    assert live["market_positions"]["sid"] == sc.sids["market_positions"][0]


def test_only_known_private_channels_are_subscribed() -> None:
    sc = Script([LAL], private=("market_positions", "user_orders", "communications"))
    got = [c["params"]["channels"] for c in sc.commands()][2:]
    assert got == [["market_positions"], ["user_orders"]]  # communications is not a private channel we carry


def test_terminal_error_on_fill_sid_resubscribes_fill_alone() -> None:
    sc = Script([LAL], private=PRIVATE)
    sc.boot()
    fsid = sc.sids["fill"][0]
    sc.feed({"type": "error", "sid": fsid, "msg": {"code": 10, "msg": "Channel error"}})
    cmds = sc.commands()
    assert [c["params"] for c in cmds] == [{"channels": ["fill"]}]
    sc.confirm(cmds)
    assert sc.s.table.private["fill"].sid == sc.sids["fill"][1]
    assert fsid not in sc.s.table.by_sid


def test_private_session_matches_golden() -> None:
    out, cmds, s = replay("ws_session_private", PRIVATE)
    assert_golden("ws_session_private", out, cmds)
    # Stated plainly as well: the bad fee was refused and counted, nothing else published.
    assert counted(s, "bad_frames", "units") == 1
    assert [m["kind"] for m in out] == ["fill", "fill", "position", "position"]
    assert "bad-fee" not in {m.get("trade_id") for m in out}
    assert s.table.private["fill"].sid == 13 and s.table.private["market_positions"].sid == 14


def test_private_messages_are_exact_and_routed_by_ticker() -> None:
    sc = Script([LAL], private=PRIVATE)
    sc.boot()
    fill = json.loads((FIX / "ws_fill_outcome_side.json").read_bytes())
    pos = json.loads((FIX / "ws_market_position.json").read_bytes())
    out = sc.feed(fill, pos)
    assert kinds(out) == ["fill", "position"]
    f, p = out
    assert isinstance(f, Fill) and isinstance(p, MarketPosition)
    assert (f.side, f.yes_price, f.count, f.fee, f.post_position) == ("no", 4300, 1250, 87_500, -3750)
    assert f.topic() == f"fill.{LAL}"
    assert (p.position, p.position_cost, p.realized_pnl, p.fees_paid, p.volume) == (
        10_000,
        50_000_000,
        10_000_000,
        1_000_000,
        1_500,
    )
    assert p.topic() == "position.FED-23DEC-T3.00"


def test_config_accepts_private_channels(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[connector]\nprivate_channels = ["fill", "market_positions"]\n')
    assert load_config(path, environ={}).connector.private_channels == ["fill", "market_positions"]
    assert load_config(None, environ={}).connector.private_channels == []


def test_config_refuses_an_unknown_private_channel_by_name(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[connector]\nprivate_channels = ["fill", "communications"]\n')
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    text = str(err.value)
    assert "communications" in text and "private_channels" in text


def test_user_orders_and_order_group_events_reach_the_bus_counted() -> None:
    """user_order and order_group_updates frames were decoded and only counted ("discarded");
    now each becomes its bus message (journaled, stored), counted per frame type, and one with
    an inexact value is refused and counted, never rounded."""
    sc = Script([LAL], private=PRIVATE)
    sc.boot()
    order = json.loads((FIX / "ws_user_order.json").read_bytes())
    group = json.loads((FIX / "ws_order_group_updates.json").read_bytes())
    inexact = json.loads((FIX / "ws_user_order.json").read_bytes())
    inexact["msg"]["yes_price_dollars"] = "0.35001"
    out = sc.feed(order, group, inexact)
    assert kinds(out) == ["order", "ordergroup"]
    o, g = out
    assert isinstance(o, UserOrder) and isinstance(g, OrderGroupUpdate)
    assert (o.ticker, o.status, o.side, o.yes_price, o.remaining_count) == (
        "FED-23DEC-T3.00",
        "resting",
        "yes",
        3500,
        1000,
    )
    assert o.ts_recv > 0 and o.topic() == "order.FED-23DEC-T3.00"
    assert (g.order_group_id, g.event_type, g.contracts_limit) == ("og_123", "limit_updated", 15_000)
    assert all(type(m).durable for m in out)
    s = sc.s
    assert counted(s, "messages", "user_order") == 2 and counted(s, "messages", "order_group_updates") == 1
    assert counted(s, "bad_frames", "units") == 1
    assert counted(s, "discarded", "user_order") == counted(s, "discarded", "order_group_updates") == 0
