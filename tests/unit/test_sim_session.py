"""The simulator's WS command protocol, without sockets: replies, error codes, sids, seq."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.exchange_sim.activity import Engine
from services.exchange_sim.session import SessionLimits, SimSession
from services.exchange_sim.state import ExchangeState
from shared.units import format_count, format_price

NOW = 1_793_750_400_000
NO_SUCH_ID = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(scope="module")
def state() -> ExchangeState:
    engine = Engine(3, 12, start_ms=NOW)
    public = ExchangeState(engine.initial_events)
    for em in engine.initial_emissions(NOW):
        public.apply(em)
    return public


def session(state: ExchangeState, **limits: Any) -> SimSession:
    return SimSession(1, state, SessionLimits(**limits))


def send(s: SimSession, cmd: Any, now: int = NOW) -> list[dict[str, Any]]:
    raw = cmd if isinstance(cmd, str) else json.dumps(cmd)
    return [json.loads(f) for f in s.handle(raw, now)]


def err(frames: list[dict[str, Any]]) -> int:
    assert len(frames) == 1 and frames[0]["type"] == "error", frames
    code: int = frames[0]["msg"]["code"]
    return code


def sub(s: SimSession, cid: int, channels: list[str], **params: Any) -> list[dict[str, Any]]:
    return send(s, {"id": cid, "cmd": "subscribe", "params": {"channels": channels, **params}})


def test_subscribe_orderbook_sends_subscribed_then_snapshots_numbered_from_one(state: ExchangeState) -> None:
    s = session(state)
    tickers = list(state.markets)[:3]
    out = sub(s, 1, ["orderbook_delta"], market_tickers=tickers)
    assert out[0] == {"id": 1, "type": "subscribed", "msg": {"channel": "orderbook_delta", "sid": 1}}
    snaps = out[1:]
    assert [f["type"] for f in snaps] == ["orderbook_snapshot"] * 3
    assert [f["seq"] for f in snaps] == [1, 2, 3]
    assert [f["msg"]["market_ticker"] for f in snaps] == tickers
    first = state.markets[tickers[0]]
    assert snaps[0]["msg"]["market_id"] == first.d.market_id
    yes = snaps[0]["msg"]["yes_dollars_fp"]
    assert [p for p, _ in yes] == sorted(p for p, _ in yes)  # ascending, best bid last
    assert yes[-1][0] == f"{max(first.yes) // 10_000}.{max(first.yes) % 10_000:04d}"


def test_multi_channel_subscribe_gives_each_channel_its_own_sid(state: ExchangeState) -> None:
    s = session(state)
    t = next(iter(state.markets))
    out = sub(s, 7, ["ticker", "trade", "market_lifecycle_v2"], market_ticker=t)
    assert [(f["msg"]["channel"], f["msg"]["sid"]) for f in out] == [
        ("ticker", 1),
        ("trade", 2),
        ("market_lifecycle_v2", 3),
    ]
    listing = send(s, {"id": 8, "cmd": "list_subscriptions"})
    assert listing == [
        {
            "id": 8,
            "type": "ok",
            "msg": [
                {"channel": "ticker", "sid": 1},
                {"channel": "trade", "sid": 2},
                {"channel": "market_lifecycle_v2", "sid": 3},
            ],
        }
    ]
    # Lifecycle is global: market filters are ignored.
    assert s.by_channel["market_lifecycle_v2"].all


def test_repeated_subscribe_merges_into_the_existing_sid(state: ExchangeState) -> None:
    s = session(state)
    a, b = list(state.markets)[:2]
    sub(s, 1, ["orderbook_delta"], market_tickers=[a])
    out = sub(s, 2, ["orderbook_delta"], market_tickers=[a, b])
    assert out[0] == {"id": 2, "type": "subscribed", "msg": {"channel": "orderbook_delta", "sid": 1}}
    # Only the newly added market gets a snapshot, on the same seq counter.
    assert [(f["msg"]["market_ticker"], f["seq"]) for f in out[1:]] == [(b, 2)]
    assert list(s.subs) == [1]


def test_ticker_initial_snapshot_and_market_ids(state: ExchangeState) -> None:
    s = session(state)
    m = list(state.markets.values())[2]
    out = sub(s, 1, ["ticker"], market_ids=[m.d.market_id], send_initial_snapshot=True)
    assert out[0]["type"] == "subscribed"
    assert out[1]["type"] == "ticker" and "seq" not in out[1]
    assert out[1]["msg"]["market_ticker"] == m.d.ticker
    assert out[1]["msg"]["volume_fp"] == format_count(m.volume)
    assert out[1]["msg"]["yes_bid_dollars"] == format_price(m.top()[0])


def test_unsubscribe_replies_per_sid_with_its_seq(state: ExchangeState) -> None:
    s = session(state)
    tickers = list(state.markets)[:2]
    sub(s, 1, ["orderbook_delta"], market_tickers=tickers)
    sub(s, 2, ["trade"])
    out = send(s, {"id": 3, "cmd": "unsubscribe", "params": {"sids": [1, 2]}})
    assert out == [
        {"id": 3, "sid": 1, "seq": 2, "type": "unsubscribed"},
        {"id": 3, "sid": 2, "seq": 1, "type": "unsubscribed"},
    ]
    assert s.subs == {} and s.routes == ({}, {}, {}, {})
    assert err(send(s, {"id": 4, "cmd": "unsubscribe", "params": {"sids": [1]}})) == 7


def test_update_subscription_add_delete_and_get_snapshot(state: ExchangeState) -> None:
    s = session(state)
    a, b, c = list(state.markets)[:3]
    sub(s, 1, ["orderbook_delta"], market_tickers=[a])
    out = send(
        s,
        {
            "id": 2,
            "cmd": "update_subscription",
            "params": {"sids": [1], "market_tickers": [b, c], "action": "add_markets"},
        },
    )
    assert out[0] == {"id": 2, "sid": 1, "seq": 1, "type": "ok", "msg": {"market_tickers": [a, b, c]}}
    assert [(f["type"], f["seq"]) for f in out[1:]] == [("orderbook_snapshot", 2), ("orderbook_snapshot", 3)]
    out = send(
        s,
        {
            "id": 3,
            "cmd": "update_subscription",
            "params": {"sid": 1, "market_ticker": b, "action": "delete_markets"},
        },
    )
    assert out == [{"id": 3, "sid": 1, "seq": 3, "type": "ok", "msg": {"market_tickers": [a, c]}}]
    assert b not in s.routes[0]
    out = send(
        s,
        {
            "id": 4,
            "cmd": "update_subscription",
            "params": {"sids": [1], "market_tickers": [c], "action": "get_snapshot"},
        },
    )
    assert out[0]["type"] == "ok"
    assert [(f["type"], f["seq"], f["msg"]["market_ticker"]) for f in out[1:]] == [
        ("orderbook_snapshot", 4, c)
    ]
    # get_snapshot accepts only market_tickers, for markets of the subscription.
    assert (
        err(
            send(
                s,
                {
                    "id": 5,
                    "cmd": "update_subscription",
                    "params": {"sids": [1], "market_tickers": [b], "action": "get_snapshot"},
                },
            )
        )
        == 11
    )


def test_skip_ticker_ack_omits_the_market_list(state: ExchangeState) -> None:
    s = session(state)
    a, b = list(state.markets)[:2]
    sub(s, 1, ["ticker"], market_tickers=[a], skip_ticker_ack=True)
    out = send(
        s,
        {
            "id": 2,
            "cmd": "update_subscription",
            "params": {"sid": 1, "market_tickers": [b], "action": "add_markets"},
        },
    )
    assert out == [{"id": 2, "sid": 1, "seq": 1, "type": "ok"}]


def test_use_yes_price_snapshot_reports_no_levels_on_the_yes_scale(state: ExchangeState) -> None:
    s = session(state)
    m = next(m for m in state.markets.values() if m.no)
    snap = sub(s, 1, ["orderbook_delta"], market_ticker=m.d.ticker, use_yes_price=True)[1]["msg"]
    prices = [int(p.replace(".", "")) for p, _ in snap["no_dollars_fp"]]
    assert sorted(prices) == prices
    assert set(prices) == {10_000 - q for q in m.no}


@pytest.mark.parametrize(
    ("cmd", "code"),
    [
        ("not json", 1),
        ('["a list"]', 1),
        ({"id": "seven", "cmd": "subscribe", "params": {"channels": ["trade"]}}, 1),
        ({"id": 1, "cmd": "subscribe"}, 2),
        ({"id": 1, "cmd": "subscribe", "params": {}}, 3),
        ({"id": 1, "cmd": "subscribe", "params": {"channels": []}}, 3),
        ({"id": 1, "cmd": "subscribe", "params": {"channels": "trade"}}, 1),
        ({"id": 1, "cmd": "unsubscribe", "params": {}}, 4),
        ({"id": 1, "cmd": "fly"}, 5),
        ({"id": 1, "params": {}}, 5),
        ({"id": 1, "cmd": "unsubscribe", "params": {"sids": [42]}}, 7),
        ({"id": 1, "cmd": "subscribe", "params": {"channels": ["ticker_v2"]}}, 8),
        ({"id": 1, "cmd": "subscribe", "params": {"channels": ["multivariate"]}}, 8),
        ({"id": 1, "cmd": "subscribe", "params": {"channels": ["cfbenchmarks_value"]}}, 9),
        ({"id": 1, "cmd": "subscribe", "params": {"channels": ["ticker"], "market_ids": ["not-a-uuid"]}}, 11),
        (
            {
                "id": 1,
                "cmd": "subscribe",
                "params": {"channels": ["trade"], "market_tickers": ["lower-case"]},
            },
            11,
        ),
        (
            {
                "id": 1,
                "cmd": "subscribe",
                "params": {"channels": ["orderbook_delta"], "market_ticker": "A", "market_tickers": ["A"]},
            },
            11,
        ),
        ({"id": 1, "cmd": "update_subscription", "params": {"action": "add_markets"}}, 12),
        ({"id": 1, "cmd": "update_subscription", "params": {"sids": [1, 2], "action": "add_markets"}}, 12),
        ({"id": 1, "cmd": "subscribe", "params": {"channels": ["orderbook_delta"]}}, 14),
        ({"id": 1, "cmd": "update_subscription", "params": {"sid": 1}}, 15),
        (
            {
                "id": 1,
                "cmd": "subscribe",
                "params": {"channels": ["orderbook_delta"], "market_tickers": ["KXNOPE-26JAN01-X"]},
            },
            11,  # 16 ("Market not found") is retired
        ),
        ({"id": 1, "cmd": "subscribe", "params": {"channels": ["ticker"], "market_ids": [NO_SUCH_ID]}}, 11),
    ],
)
def test_error_codes(state: ExchangeState, cmd: Any, code: int) -> None:
    assert err(send(session(state), cmd)) == code


def test_error_echoes_id_and_names_the_market(state: ExchangeState) -> None:
    out = send(
        session(state),
        {"id": 9, "cmd": "subscribe", "params": {"channels": ["trade"], "market_ticker": "KXNOPE-X"}},
    )
    assert out == [
        {
            "id": 9,
            "type": "error",
            "msg": {
                "code": 11,
                "msg": "Invalid parameter",
                "market_ticker": "KXNOPE-X",
                "market_tickers": ["KXNOPE-X"],  # the current spec's field (msg.market_id left it)
            },
        }
    ]
    # id 0 is the same as no id: the reply has none.
    assert "id" not in send(session(state), {"id": 0, "cmd": "fly"})[0]


def test_update_errors_on_a_live_subscription(state: ExchangeState) -> None:
    s = session(state)
    a = next(iter(state.markets))
    sub(s, 1, ["orderbook_delta"], market_tickers=[a])
    sub(s, 2, ["market_lifecycle_v2"])
    assert (
        err(send(s, {"id": 3, "cmd": "update_subscription", "params": {"sid": 9, "action": "add_markets"}}))
        == 7
    )
    assert (
        err(send(s, {"id": 3, "cmd": "update_subscription", "params": {"sid": 1, "action": "explode"}})) == 13
    )
    assert (
        err(
            send(
                s,
                {
                    "id": 3,
                    "cmd": "update_subscription",
                    "params": {"sid": 2, "market_ticker": a, "action": "add_markets"},
                },
            )
        )
        == 13
    )
    assert (
        err(send(s, {"id": 3, "cmd": "update_subscription", "params": {"sid": 1, "action": "add_markets"}}))
        == 14
    )


def test_market_limit_and_command_rate(state: ExchangeState) -> None:
    s = session(state, max_markets_per_sub=2, sub_cmd_rate=3.0)
    a, b, c = list(state.markets)[:3]
    assert err(sub(s, 1, ["orderbook_delta"], market_tickers=[a, b, c])) == 26
    sub(s, 2, ["orderbook_delta"], market_tickers=[a])
    upd = {
        "id": 3,
        "cmd": "update_subscription",
        "params": {"sid": 1, "market_tickers": [b, c], "action": "add_markets"},
    }
    assert err(send(s, upd)) == 26
    snap = {
        "id": 4,
        "cmd": "update_subscription",
        "params": {"sid": 1, "market_tickers": [a], "action": "get_snapshot"},
    }
    # The failed add took a token too: of a 3-token bucket, two are left.
    replies = [send(s, snap, NOW)[0] for _ in range(3)]
    assert [r["type"] for r in replies] == ["ok", "ok", "error"]
    assert replies[2]["msg"]["code"] == 27
    assert send(s, snap, NOW + 2_000)[0]["type"] == "ok"  # the bucket refills


def test_under_a_market_cap_a_subscribe_that_fits_gets_its_own_sid(state: ExchangeState) -> None:
    s = session(state, max_markets_per_sub=2)
    a, b, c, d, e = list(state.markets)[:5]
    assert err(sub(s, 1, ["orderbook_delta", "trade"], market_tickers=[a, b, c])) == 26
    first = sub(s, 2, ["orderbook_delta", "trade"], market_tickers=[a, b])
    assert [f["msg"]["sid"] for f in first if f["type"] == "subscribed"] == [1, 2]
    # Merged into sid 1 it would hold 3 markets: a subscription of its own instead.
    second = sub(s, 3, ["orderbook_delta", "trade"], market_tickers=[c, d])
    assert [f["msg"]["sid"] for f in second if f["type"] == "subscribed"] == [3, 4]
    snaps = [f for f in second if f["type"] == "orderbook_snapshot"]
    assert [(f["sid"], f["seq"], f["msg"]["market_ticker"]) for f in snaps] == [(3, 1, c), (3, 2, d)]
    assert s.routes[0][c] == [s.subs[3]] and s.subs[1].markets.keys() == {a, b}
    # Dropping the newest leaves the older one taking merges again.
    send(s, {"id": 4, "cmd": "unsubscribe", "params": {"sids": [3, 4]}})
    third = sub(s, 5, ["orderbook_delta"], market_tickers=[a])
    assert third[0]["msg"]["sid"] == 1
    assert sub(s, 6, ["orderbook_delta"], market_tickers=[e])[0]["msg"]["sid"] == 5
    # No cap (the default): everything merges.
    s = session(state)
    sub(s, 1, ["orderbook_delta"], market_tickers=[a, b, c])
    assert sub(s, 2, ["orderbook_delta"], market_tickers=[d, e])[0]["msg"]["sid"] == 1


def test_an_internal_failure_is_error_1_not_a_dead_connection(state: ExchangeState) -> None:
    s = session(state)

    def broken(*args: Any) -> None:
        raise RuntimeError("simulated bug")

    s._subscribe = broken  # type: ignore[method-assign,assignment]
    # 17 ("Internal error") is retired: the general processing error answers instead.
    assert err(send(s, {"id": 1, "cmd": "subscribe", "params": {"channels": ["trade"]}})) == 1
    assert send(s, {"id": 2, "cmd": "list_subscriptions"})[0]["type"] == "ok"


def test_errors_about_a_live_subscription_name_its_sid_and_last_seq(state: ExchangeState) -> None:
    s = session(state)
    a, b = list(state.markets)[:2]
    sub(s, 1, ["orderbook_delta"], market_tickers=[a])  # snapshot: seq 1
    sub(s, 2, ["ticker"], market_tickers=[a])
    bad_snapshot = {"sid": 1, "market_tickers": [b], "action": "get_snapshot"}
    (e,) = send(s, {"id": 3, "cmd": "update_subscription", "params": bad_snapshot})
    assert (e["sid"], e["seq"], e["msg"]["code"], e["msg"]["market_tickers"]) == (1, 1, 11, [b])
    (e,) = send(s, {"id": 4, "cmd": "update_subscription", "params": {"sid": 2, "action": "explode"}})
    assert (e["sid"], e["msg"]["code"]) == (2, 13) and "seq" not in e  # ticker frames have no seq
    (e,) = send(s, {"id": 5, "cmd": "update_subscription", "params": {"sid": 9, "action": "add_markets"}})
    assert e["msg"]["code"] == 7 and "sid" not in e  # no such subscription to name
    # An error takes no number: the next snapshot is still seq 2.
    ok, snap = send(
        s, {"id": 6, "cmd": "update_subscription", "params": {**bad_snapshot, "market_tickers": [a]}}
    )
    assert (ok["seq"], snap["seq"]) == (1, 2)


@pytest.mark.parametrize("consumes", [False, True])
def test_get_snapshot_answers_carry_its_id_and_the_ok_seq_follows_the_setting(
    state: ExchangeState, consumes: bool
) -> None:
    s = session(state, ok_consumes_seq=consumes)
    a, b = list(state.markets)[:2]
    assert [f["seq"] for f in sub(s, 1, ["orderbook_delta"], market_tickers=[a, b])[1:]] == [1, 2]
    params = {"sid": 1, "market_tickers": [b, a], "action": "get_snapshot"}
    ok, *snaps = send(s, {"id": 7, "cmd": "update_subscription", "params": params})
    assert ok["seq"] == (3 if consumes else 2)
    assert [(f["type"], f["id"], f["seq"]) for f in snaps] == [
        ("orderbook_snapshot", 7, ok["seq"] + 1),
        ("orderbook_snapshot", 7, ok["seq"] + 2),
    ]
    # Without an id (or id 0), the snapshots carry none, as any other.
    ok, snap = send(s, {"id": 0, "cmd": "update_subscription", "params": {**params, "market_tickers": [a]}})
    assert "id" not in snap and snap["seq"] == ok["seq"] + 1
    # Channels without seq never take one.
    sub(s, 2, ["ticker"], market_tickers=[a])
    add = {"sid": 2, "market_tickers": [b], "action": "add_markets"}
    assert send(s, {"id": 8, "cmd": "update_subscription", "params": add})[0]["seq"] == 1


def test_a_snapshot_leaves_an_empty_side_out() -> None:
    """AsyncAPI: "This key will not exist if there are no Yes offers" (and the same for No)."""
    engine = Engine(3, 12, start_ms=NOW)
    own = ExchangeState(engine.initial_events)
    for em in engine.initial_emissions(NOW):
        own.apply(em)
    a, b = list(own.markets)[:2]
    own.markets[a].yes.clear()
    own.markets[b].yes.clear()
    own.markets[b].no.clear()
    snaps = sub(session(own), 1, ["orderbook_delta"], market_tickers=[a, b])[1:]
    assert [sorted(f["msg"]) for f in snaps] == [
        ["market_id", "market_ticker", "no_dollars_fp"],
        ["market_id", "market_ticker"],
    ]
