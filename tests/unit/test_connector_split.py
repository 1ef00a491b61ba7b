"""Error 26 (more markets than one subscription may hold): the refused subscription's markets
are split in two and each half subscribed again, recursively, never below one market."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from shared.messages import BookState

from .test_connector_support import Script, counted

MARKETS = [f"KXM{i}-26JAN01-X" for i in range(8)]
REFUSED = "Subscription market limit exceeded"


def exchange(sc: Script, cap: int) -> list[dict[str, Any]]:
    """Answer the session's commands like an exchange whose subscriptions hold at most ``cap``
    markets (0: it refuses every market subscription), until the session sends nothing more.
    Returns every command seen."""
    seen: list[dict[str, Any]] = []
    for _ in range(100):  # a session that keeps retrying forever fails here
        cmds = sc.commands()
        if not cmds:
            return seen
        seen.extend(cmds)
        ok, refused = [], []
        for c in cmds:
            markets = c["params"].get("market_tickers") or []
            adding = c["cmd"] == "subscribe" or c["params"].get("action") == "add_markets"
            (refused if adding and markets and len(markets) > cap else ok).append(c)
        sc.confirm(ok)
        sc.feed(*[{"id": c["id"], "type": "error", "msg": {"code": 26, "msg": REFUSED}} for c in refused])
    raise AssertionError("the session never stopped sending commands")


def test_a_refused_subscription_splits_in_halves_until_every_market_is_subscribed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sc = Script(MARKETS, max_markets=100)
    with caplog.at_level(logging.WARNING, "kxfeed.connector.subscriptions"):
        seen = exchange(sc, cap=2)
    t = sc.s.table
    assert sc.s.subscribed() and not sc.s.broken
    assert t.markets() == set(MARKETS)
    # 8 -> 4 + 4 -> 2 + 2 + 2 + 2: three splits, four shards of two, each with its three sids.
    assert counted(sc.s, "splits", "split") == 3 and counted(sc.s, "splits", "gave_up") == 0
    assert sorted(len(s.markets) for s in t.shards.values()) == [2, 2, 2, 2]
    assert all(s.live() for s in t.shards.values())
    assert len({t.book_sub(m) for m in MARKETS}) == 4
    assert t.max_markets == 2  # later shards are no larger than what Kalshi took
    # Refused subscriptions had no sid: nothing to unsubscribe.
    assert not [c for c in seen if c["cmd"] == "unsubscribe"]
    assert counted(sc.s, "command_errors", "26") == 3
    split_logs = [r for r in caplog.records if "split in two" in r.getMessage()]
    assert len(split_logs) == 1  # logged once; the counter has the rest


def test_a_single_refused_market_is_given_up_not_split_forever() -> None:
    sc = Script(MARKETS[:3], max_markets=100)
    exchange(sc, cap=0)  # returns: the retries are bounded
    t = sc.s.table
    assert counted(sc.s, "splits", "split") == 2  # 3 -> 2 + 1, 2 -> 1 + 1
    assert counted(sc.s, "splits", "gave_up") == 3
    assert t.markets() == set() and not t.shards and not sc.s.books
    assert sc.s.subscribed() and not sc.s.broken  # the lifecycle channel is still there
    assert t.lifecycle is not None and t.lifecycle.sid
    assert set(sc.recovery.invalid) == set(MARKETS[:3])


def test_given_up_markets_are_told_invalid_on_the_bus() -> None:
    sc = Script(MARKETS[:1], max_markets=100)
    cmds = sc.commands()
    sc.confirm(cmds[1:])
    sc.s.frames(
        [f'{{"id":{cmds[0]["id"]},"type":"error","msg":{{"code":26,"msg":"{REFUSED}"}}}}'.encode()], 5, 0.0
    )
    states = [m for m in sc.s.take() if isinstance(m, BookState)]
    assert [(m.ticker, m.valid, m.reason) for m in states] == [(MARKETS[0], False, "subscription_refused")]


def test_a_refused_add_moves_the_markets_to_a_new_shard_and_fills_no_more() -> None:
    sc = Script(MARKETS[:2], max_markets=100)
    exchange(sc, cap=2)
    full = sc.s.table.book_sub(MARKETS[0])
    assert full is not None
    sc.s.add_markets(MARKETS[2:4], 1.0)
    adds = sc.commands()
    assert {c["params"]["action"] for c in adds} == {"add_markets"}
    # Every channel refuses the add; the first refusal moves the markets, the others find them gone.
    sc.feed(*[{"id": c["id"], "type": "error", "msg": {"code": 26, "msg": REFUSED}} for c in adds])
    exchange(sc, cap=2)
    t = sc.s.table
    assert t.markets() == set(MARKETS[:4])
    assert t.book_sub(MARKETS[2]) is t.book_sub(MARKETS[3]) is not full
    assert full.markets == set(MARKETS[:2])
    assert t.shards[full.shard].full
    sc.s.add_markets(MARKETS[4:5], 2.0)
    exchange(sc, cap=2)
    assert t.book_sub(MARKETS[4]) is t.book_sub(MARKETS[2]) is not full  # a shard with room


def test_a_refused_resubscribe_unsubscribes_the_shard_and_splits_it() -> None:
    sc = Script(MARKETS[:4], max_markets=100)
    exchange(sc, cap=4)
    t = sc.s.table
    ticker = next(s for s in t.live_subs() if s.channel == "ticker")
    old = {s.sid for s in t.live_subs() if s.shard == ticker.shard}
    t.resubscribe(ticker, "test", 1.0)
    cmds = sc.commands()
    sub = next(c for c in cmds if c["cmd"] == "subscribe")
    sc.confirm([c for c in cmds if c is not sub])
    sc.feed({"id": sub["id"], "type": "error", "msg": {"code": 26, "msg": REFUSED}})
    seen = exchange(sc, cap=2)
    unsubscribed = {sid for c in seen if c["cmd"] == "unsubscribe" for sid in c["params"]["sids"]}
    assert unsubscribed == old - {ticker.sid}  # the shard's other channels; ticker's went before
    assert t.markets() == set(MARKETS[:4]) and len(t.shards) == 2
    assert all(s.live() for s in t.shards.values())
