"""The proof's excuses hold to their bounds: a row missing from a killed connector's connection
is excused only when the simulator sent it at most 200 ms before the kill, a delta after a seq
skip only when its market's snapshot superseded it in time, and ticker messages that share a
millisecond are each a row of their own."""

from __future__ import annotations

from collections import Counter
from typing import Any

from tests.e2e.proof import Bounds, Settled, _excuse_in_flight, _excuse_recovering
from tests.e2e.rows import Rows, compare, ticker_value

MS = 1_000_000
KILL = 1_800_000_000_000 * MS


def settled(truth: dict[str, Rows], stored: dict[str, Rows]) -> Settled:
    return Settled(compare(truth, stored), {}, Counter())


def test_only_rows_sent_within_the_bound_before_a_kill_are_excused_as_in_flight() -> None:
    truth: dict[str, Rows] = {"delta": {}, "snapshot": {}, "trade": {}, "ticker": {}}
    truth["trade"] = {("a",): ("T", 1, 1, "yes"), ("b",): ("T", 1, 1, "yes"), ("c",): ("T", 1, 1, "yes")}
    truth["trade"][("d",)] = ("T", 1, 1, "yes")
    via: dict[str, dict[tuple[Any, ...], dict[int, int]]] = {k: {} for k in truth}
    via["trade"] = {
        ("a",): {1: KILL - 150 * MS},  # in flight: 150 ms before the kill of conn 1
        ("b",): {1: KILL - 250 * MS},  # on the killed connection, but older than the bound
        ("c",): {2: KILL - 10 * MS},  # on a connection nobody killed
        ("d",): {1: KILL + 5 * MS},  # written after the kill, before the exchange saw the drop
    }
    s = settled(truth, {k: {} for k in truth})
    _excuse_in_flight(s, via, {1: KILL}, Bounds(in_flight_ms=200))
    assert sorted(s.diff["trade"]["in_flight"]) == [("a",), ("d",)]
    assert sorted(s.diff["trade"]["missing"]) == [("b",), ("c",)]
    assert s.diff["trade"]["killed_older_than_bound"] == [("b",)]
    assert s.lost() == 2 and s.in_flight() == 2
    assert round(s.in_flight_max_ms) == 150
    _, n, bound = s.excuses()[0]
    assert (n, "200 ms" in bound) == (2, True), s.excuses()


def test_deltas_after_a_seq_skip_are_excused_only_until_a_timely_snapshot() -> None:
    s_ns = 1_800_000_000 * 10**9
    truth: dict[str, Rows] = {"delta": {}, "snapshot": {}, "trade": {}, "ticker": {}}
    via: dict[str, dict[tuple[Any, ...], dict[int, int]]] = {k: {} for k in truth}
    # conn 1, sid 1: seq 5 withheld; A's snapshot at seq 8 (1 s later), B's at seq 9 (30 s later).
    for seq, ticker, at_s in ((6, "A", 0), (7, "B", 0), (10, "C", 0)):
        truth["delta"][(1, 1, seq)] = (ticker, "yes", 100, 1)
        via["delta"][(1, 1, seq)] = {1: s_ns + at_s * 10**9}
    for seq, ticker, at_s in ((8, "A", 1), (9, "B", 30)):
        truth["snapshot"][(1, 1, seq)] = (ticker, (), ())
        via["snapshot"][(1, 1, seq)] = {1: s_ns + at_s * 10**9}
    stored = {k: {} for k in truth} | {"snapshot": dict(truth["snapshot"])}
    s = settled(truth, stored)
    _excuse_recovering(s, truth, via, {(1, 1, 5)}, open_conns={1}, bounds=Bounds(resync_s=10))
    assert s.diff["delta"]["recovering"] == [(1, 1, 6)]
    # B's snapshot came too late; C never got one on a connection still open: both lost.
    assert sorted(s.diff["delta"]["missing"]) == [(1, 1, 7), (1, 1, 10)]
    assert sorted(s.diff["delta"]["recovering_too_late"]) == [(1, 1, 7), (1, 1, 10)]
    # C again, its connection closed since: the end supersedes C's wait if it came in time.
    truth = {"delta": {(1, 1, 10): ("C", "yes", 100, 1)}, "snapshot": {}}
    truth["trade"] = {("t",): ("C", 1, 1, "no")}
    stored = {"delta": {}, "snapshot": {}, "trade": dict(truth["trade"])}
    for end_s, excused in ((2, [(1, 1, 10)]), (20, [])):
        via = {"delta": {(1, 1, 10): {1: s_ns}}, "snapshot": {}, "trade": {("t",): {1: s_ns + end_s * 10**9}}}
        s = settled(truth, stored)
        _excuse_recovering(s, truth, via, {(1, 1, 5)}, open_conns=set(), bounds=Bounds(resync_s=10))
        assert s.diff["delta"]["recovering"] == excused, end_s
        assert s.lost() == 1 - len(excused)


def test_tickers_sharing_a_millisecond_are_rows_of_their_own() -> None:
    def msg(bid: str, volume: str) -> dict[str, Any]:
        return {"price_dollars": "0.5000", "yes_bid_dollars": bid, "yes_ask_dollars": "",
                "volume_fp": volume, "open_interest_fp": "1.00"}  # fmt: skip

    a, b = ticker_value(msg("0.4000", "2.00")), ticker_value(msg("", "3.00"))
    assert a == (5000, 4000, 10_000, 200, 100) and b == (5000, 0, 10_000, 300, 100)
    truth: dict[str, Rows] = {"ticker": {("T", 1, a, 0): a, ("T", 1, b, 0): b, ("T", 1, a, 1): a}}
    one_kept = settled(truth, {"ticker": {("T", 1, a, 0): a}})
    assert sorted(one_kept.diff["ticker"]["missing"]) == sorted([("T", 1, a, 1), ("T", 1, b, 0)])
    assert one_kept.tickers_not_stored() == 2
    assert settled(truth, {"ticker": dict(truth["ticker"])}).lost() == 0
