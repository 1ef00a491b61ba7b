"""The gap filler's pure core: when REST steps in, and whose record closes the gap."""

from __future__ import annotations

from services.gapfill.tracker import GapTracker
from shared.messages import Gap

NS = 1_000_000_000


def gap(tickers: list[str], status: str = "open", method: str = "get_snapshot", expected: int = 10) -> Gap:
    return Gap(conn=7, sid=2, expected=expected, received=expected + 3, tickers=tickers, reason="seq_gap",
               status=status, method=method, detected_ms=1_000, pub="connector")  # type: ignore[arg-type]  # fmt: skip


def test_nothing_is_due_before_rest_after() -> None:
    t = GapTracker(rest_after=2.0)
    t.opened(gap(["A", "B"]), 10.0)
    assert t.due(11.9) == []
    assert t.due(12.0) == ["A", "B"]
    assert t.due(12.1) == []  # in flight: not asked twice


def test_connector_repairs_in_time_rest_does_nothing() -> None:
    t = GapTracker(rest_after=2.0)
    t.opened(gap(["A", "B"]), 10.0)
    assert t.restored("A", 10.1, 1) == [] and t.restored("B", 10.2, 2) == []
    assert t.open == {} and t.due(20.0) == []
    assert t.recovered(gap(["A", "B"], "recovered"), 10.3)  # the connector's record is news


def test_rest_repair_writes_the_record_once() -> None:
    t = GapTracker(rest_after=1.0)
    t.opened(gap(["A", "B", "C"]), 0.0)
    t.restored("C", 0.5, 0)  # in band for one market
    assert t.due(1.0) == ["A", "B"]
    wanted, records = t.fetched(["A", "B"], [], 1.2, 3 * NS)
    assert wanted == {"A", "B"}
    (rec,) = records
    assert (rec.conn, rec.sid, rec.expected, rec.status, rec.method) == (7, 2, 10, "recovered", "rest")
    assert (rec.detected_ms, rec.recovered_ms, rec.tickers) == (1_000, 3_000, ["A", "B", "C"])
    assert t.open == {}
    # The connector's own "recovered" for the same gap arrives later: not news, not counted again.
    assert not t.recovered(gap(["A", "B", "C"], "recovered", "resubscribe"), 5.0)


def test_restored_during_the_fetch_is_not_published_and_partial_rest_closes_later() -> None:
    t = GapTracker(rest_after=1.0)
    t.opened(gap(["A", "B", "C"]), 0.0)
    assert t.due(1.0) == ["A", "B", "C"]
    t.restored("A", 1.1, 0)  # the connector got there while REST was fetching
    wanted, records = t.fetched(["A", "B"], ["C"], 1.2, 2 * NS)  # C: Kalshi no longer knows it
    assert wanted == {"B"} and len(records) == 1
    t.opened(gap(["D", "E"], expected=50), 2.0)
    assert t.due(3.0) == ["D", "E"]
    wanted, records = t.fetched(["D"], [], 3.1, 4 * NS)  # E missing from the answer
    assert wanted == {"D"} and records == []
    assert t.due(3.5) == [] and t.due(4.1) == ["E"]  # retried after retry_s
    t.failed(4.2)
    assert t.due(4.3) == []
    (rec,) = t.restored("E", 4.4, 5 * NS)  # REST did D, the connector E: REST helped, so a record
    assert (rec.expected, rec.method, rec.recovered_ms) == (50, "rest", 5_000)


def test_gaps_without_markets_and_repeats_are_ignored() -> None:
    t = GapTracker(rest_after=0.0)
    t.opened(gap([]), 0.0)
    assert t.open == {}
    t.opened(gap(["A"]), 0.0)
    t.opened(gap(["A", "B"]), 0.5)  # same key again
    assert t.pending() == 1
