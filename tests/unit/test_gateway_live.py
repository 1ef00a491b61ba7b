"""LiveState: newest state per market and kind, settled markets leave, a cap evicts the least
recently updated, every eviction counted."""

from __future__ import annotations

import msgspec

from services.gateway import wire
from services.gateway.live import LiveState
from shared.messages import Gap, MarketLifecycle, Message, kind_of
from tests.support.gateway_stream import tob, trade
from tests.support.messages import book_meta


def put(live: LiveState, msg: Message) -> None:
    data = wire.convert(msg)
    live.observe(msg, kind_of(msg), data, msgspec.json.encode(data))


def test_newest_per_kind_and_market() -> None:
    live = LiveState(10)
    put(live, tob("A", 4300, ts_ns=1))
    put(live, tob("A", 4400, ts_ns=2))
    put(live, trade("A", "t1", ts_ns=3))
    put(live, tob("B", 100, ts_ns=4))
    entry = live.get("tob", "A")
    assert entry is not None and entry.data["yes_bid"] == "0.4400" and entry.ts_ns == 2
    assert msgspec.json.decode(entry.encoded) == entry.data
    latest = live.latest("A")
    assert latest is not None and set(latest) == {"tob", "trade"}
    assert live.latest("nope") is None and live.get("tob", "nope") is None
    assert [e.ticker for e in live.entries(["tob"])] == ["A", "B"]
    assert [e.kind for e in live.entries(["trade", "tob"], ["B", "A", "C"])] == ["tob", "trade", "tob"]


def test_cap_evicts_least_recently_updated() -> None:
    live = LiveState(2)
    put(live, tob("A"))
    put(live, tob("B"))
    put(live, tob("A", 4400))  # A is now the most recent
    put(live, tob("C"))
    assert sorted(live.tickers()) == ["A", "C"]
    assert live.counts[("evicted", "cap")] == 1
    for i in range(100):
        put(live, tob(f"M{i}"))
    assert len(live) == 2 and live.counts[("evicted", "cap")] == 101


def test_settled_market_leaves_and_stays_out_until_reopened() -> None:
    live = LiveState(10)
    put(live, tob("A"))
    put(live, MarketLifecycle(ticker="A", event_type="settled"))
    assert "A" not in live and live.counts[("evicted", "settled")] == 1
    put(live, tob("A"))  # a late message about it
    assert "A" not in live and live.counts[("ignored_closed", "")] == 1
    put(live, book_meta("A", status="finalized"))
    put(live, book_meta("A", status="active"))  # reopened
    put(live, tob("A"))
    assert "A" in live


def test_gap_kept_under_each_market_given_once() -> None:
    live = LiveState(10)
    put(live, Gap(conn=1, sid=2, expected=3, received=5, tickers=["A", "B"], reason="seq"))
    assert live.get("gap", "A") is not None and live.get("gap", "B") is not None
    assert len(list(live.entries(["gap"]))) == 1


def test_closed_set_is_bounded() -> None:
    live = LiveState(3)
    for i in range(50):
        put(live, MarketLifecycle(ticker=f"M{i}", event_type="determined"))
    assert len(live._closed) == 3


def test_kept_unconverted_until_read_then_as_converted() -> None:
    """A message handed in bare (no stream subscriber took its kind) is converted when first
    read, once, to what wire.convert gives; a bare gap under two markets is still given once."""
    live = LiveState(10)
    msg = tob("A", 4300, ts_ns=7)
    live.observe(msg, "tob")
    entry = live.get("tob", "A")
    assert entry is not None and entry.source._data is None  # nothing made yet
    assert entry.data == wire.convert(msg) and entry.data is entry.data
    assert msgspec.json.decode(entry.encoded) == entry.data and entry.ts_ns == 7
    live.observe(Gap(conn=1, sid=2, expected=3, received=5, tickers=["A", "B"], reason="seq"), "gap")
    gaps = list(live.entries(["gap"]))
    assert len(gaps) == 1 and gaps[0].data["tickers"] == ["A", "B"]
