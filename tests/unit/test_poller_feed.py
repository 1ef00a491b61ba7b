"""The fallback's pure core: which markets have lost their WebSocket feed, and since when."""

from __future__ import annotations

from services.poller.feed import FeedHealth, connector_ids
from shared.kalshi.discovery import shard_of
from shared.messages import BookState, Heartbeat


def hb(worker: str, connected: int, epoch: int = 1) -> Heartbeat:
    counters = {"connected": connected}
    return Heartbeat(
        worker=worker, pid=1, uptime_ms=0, ready=True, counters=counters, pub=worker, epoch=epoch
    )


def state(ticker: str, valid: bool, pub: str = "connector") -> BookState:
    return BookState(ticker=ticker, valid=valid, reason="" if valid else "seq_gap", pub=pub)


def test_connector_ids_follow_the_shard_count() -> None:
    assert connector_ids(1) == ["connector"]
    assert connector_ids(3) == ["connector-0", "connector-1", "connector-2"]


def test_never_heard_is_down_from_the_start_and_due_after_fallback_after() -> None:
    f = FeedHealth(1, timeout_s=3.0, fallback_after=15.0, now=0.0)
    assert f.tick(1.0) == []  # down from the start: no transition to report
    assert f.due(["A", "B"], 14.9) == []
    assert f.due(["A", "B"], 15.0) == ["A", "B"]
    f.heartbeat(hb("connector", 1), 15.1)
    assert f.tick(15.1) == [("connector", True)]
    assert f.due(["A", "B"], 15.2) == [] and f.up() == ["connector"]


def test_disconnected_or_silent_connector_takes_its_markets_down() -> None:
    f = FeedHealth(1, timeout_s=3.0, fallback_after=2.0, now=0.0)
    f.heartbeat(hb("connector", 1), 0.5)
    f.tick(0.5)
    f.heartbeat(hb("connector", 0), 10.0)  # heartbeat says the WebSocket is down
    assert f.tick(10.0) == [("connector", False)]
    assert f.due(["A"], 11.9) == [] and f.due(["A"], 12.0) == ["A"]
    f.heartbeat(hb("connector", 1), 12.5)
    assert f.tick(12.5) == [("connector", True)]
    assert f.tick(15.4) == []
    assert f.tick(15.6) == [("connector", False)]  # no heartbeat for more than 3 s: process gone
    assert f.down_since("A") == 15.6


def test_invalid_books_are_down_per_market_until_valid() -> None:
    f = FeedHealth(1, timeout_s=3.0, fallback_after=1.0, now=0.0)
    f.heartbeat(hb("connector", 1), 0.0)
    f.tick(0.0)
    f.book_state(state("A", False), 5.0)
    f.book_state(state("A", False), 5.5)  # repeated: the outage still began at 5.0
    f.book_state(state("B", False, pub="orderbook"), 5.0)  # not the connector's word
    f.heartbeat(hb("connector", 1), 6.0)
    assert f.due(["A", "B", "C"], 6.0) == ["A"]
    f.book_state(state("A", True), 6.1)
    assert f.due(["A", "B", "C"], 6.2) == []


def test_a_restarted_connector_forgets_what_the_old_process_said() -> None:
    f = FeedHealth(1, timeout_s=3.0, fallback_after=1.0, now=0.0)
    f.heartbeat(hb("connector", 1, epoch=1), 0.0)
    f.book_state(state("A", False), 0.5)
    f.heartbeat(hb("connector", 1, epoch=2), 1.0)
    f.tick(1.0)
    assert f.down_since("A") is None
    f.book_state(state("Z", False), 2.0)
    f.forget({"A"})
    assert f.down_since("Z") is None


def test_shards_fail_independently() -> None:
    f = FeedHealth(2, timeout_s=3.0, fallback_after=1.0, now=0.0)
    tickers = [f"KX-{i}" for i in range(20)]
    f.heartbeat(hb("connector-0", 1), 0.0)
    f.heartbeat(hb("connector-1", 0), 0.0)
    f.tick(0.0)
    due = f.due(tickers, 2.0)
    assert due and due == [t for t in tickers if shard_of(t, 2) == 1]


def test_named_collectors_a_market_is_down_only_when_every_collector_of_it_is() -> None:
    assert connector_ids(1, "a") == ["connector-a"]
    assert connector_ids(2, "a") == ["connector-a-0", "connector-a-1"]
    f = FeedHealth(1, timeout_s=3.0, fallback_after=1.0, now=0.0, collectors=("a", "b"))
    f.heartbeat(hb("connector-a", 1), 0.5)
    f.heartbeat(hb("connector-b", 1), 0.5)
    f.tick(0.5)
    assert f.due(["A"], 2.0) == []
    f.heartbeat(hb("connector-a", 0), 3.0)
    f.tick(3.0)
    assert f.due(["A"], 9.0) == [] and f.down_since("A") is None  # b still carries it
    f.heartbeat(hb("connector-b", 0), 4.0)
    f.tick(4.0)
    assert f.down_since("A") == 4.0 and f.due(["A"], 5.0) == ["A"]  # since the last one went
