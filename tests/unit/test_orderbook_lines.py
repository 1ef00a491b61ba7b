"""Redundant collectors in the orderbook core: one book per line, the VALID one published,
failover without an INVALID interval, no stealing back, dead collectors' books out."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from services.orderbook.emit import Emitter
from services.orderbook.lines import Lines, LineSelector
from shared import collectors
from shared.book.builder import Builder
from shared.messages import BookDelta, BookSnapshot, BookState, MarketLifecycle, Message, TopOfBook
from tests.support.messages import book_meta

T = "KXNBAGAME-26NOV03LALBOS-LAL"
A, B = "connector-a", "connector-b"
CONN = {A: 100, B: 200}


def snap(pub: str, xseq: int = 1, yes: int = 4300, conn: int | None = None) -> BookSnapshot:
    return BookSnapshot(
        ticker=T, market_id="m", conn=conn or CONN[pub], sid=1, xseq=xseq,
        yes=[(yes, 1000)], no=[(5500, 700)], pub=pub,
    )  # fmt: skip


def delta(pub: str, xseq: int, price: int, d: int, conn: int | None = None) -> BookDelta:
    return BookDelta(
        ticker=T, market_id="m", conn=conn or CONN[pub], sid=1, xseq=xseq, side="yes", price=price,
        delta=d, pub=pub,
    )  # fmt: skip


def lines() -> Lines:
    return Lines(Builder, heartbeat_timeout_s=3.0)


def states(out: list[Message]) -> list[tuple[bool, str]]:
    return [(m.valid, m.reason) for m in out if type(m) is BookState]


def tops(out: list[Message]) -> list[TopOfBook]:
    return [m for m in out if type(m) is TopOfBook]


# ---- names ------------------------------------------------------------------------------------
def test_publisher_names_carry_collector_and_shard_and_split_back() -> None:
    assert collectors.connector_ids("", 1) == ["connector"]
    assert collectors.connector_ids("", 2) == ["connector-0", "connector-1"]
    assert collectors.connector_ids("a", 1) == ["connector-a"]
    assert collectors.connector_ids("a", 2) == ["connector-a-0", "connector-a-1"]
    for pub, line in [
        ("connector", ""), ("connector-3", ""), ("connector-a", "a"), ("connector-a-3", "a"),
        ("gapfill", None), ("orderbook", None), ("connector-A", None), ("connector-a-x", None),
    ]:  # fmt: skip
        assert collectors.line_of(pub) == line, pub
    assert collectors.parse_instance("a-2") == ("a", 2)
    assert collectors.parse_instance("2") == (None, 2)
    assert collectors.parse_instance("") == (None, None)
    for bad in ("A", "a-b", "-1", "a-"):
        try:
            collectors.parse_instance(bad)
        except ValueError as exc:
            assert "NAME-N" in str(exc)
        else:
            raise AssertionError(bad)


# ---- the selector -----------------------------------------------------------------------------
usable_maps = st.dictionaries(st.sampled_from(["", "a", "b", "c"]), st.booleans(), max_size=4)


@given(st.lists(usable_maps, min_size=1, max_size=30))
def test_selector_keeps_a_usable_line_and_moves_only_to_a_usable_one(steps: list[dict[str, bool]]) -> None:
    sel = LineSelector()
    for usable in steps:
        before = sel.active.get(T)
        got = sel.choose(T, usable, "why")
        if before is not None and usable.get(before):
            assert got == before  # never stolen from a usable line
        elif any(usable.values()):
            assert got is not None and usable[got]
        elif usable:
            assert got in usable
        else:
            assert got is None and T not in sel.active
        fo = sel.take_failovers()
        moved = before is not None and got is not None and got != before and usable.get(got, False)
        assert len(fo) == (1 if moved else 0)
        if fo:
            assert (fo[0].from_line, fo[0].to_line) == (before, got)


# ---- lines ------------------------------------------------------------------------------------
def test_each_line_builds_its_own_book_and_only_the_active_one_is_published() -> None:
    ls = lines()
    em = Emitter(ls)
    ls.apply_many([book_meta(T, pub="poller"), snap(A), snap(B, yes=4300)], 0.0)
    out = em.flush(0.0)
    assert states(out) == [(True, "")] and ls.active_line(T) == "a"
    # Both lines see the same change; each applies its own, neither invalidates the other.
    ls.apply_many([delta(A, 2, 4400, 500), delta(B, 2, 4400, 500)], 0.1)
    out = em.flush(0.1)
    assert not states(out) and [t.yes_bid for t in tops(out)] == [4400]
    assert ls.builders["a"].books[T].valid and ls.builders["b"].books[T].valid
    assert ls.builders["a"].books[T].hash == ls.builders["b"].books[T].hash


def test_an_invalid_active_line_fails_over_at_once_with_no_invalid_published() -> None:
    ls = lines()
    em = Emitter(ls)
    ls.apply_many([book_meta(T, pub="poller"), snap(A), snap(B)], 0.0)
    em.flush(0.0)
    # Line a breaks (a negative level) while b goes on: the market follows b.
    ls.apply_many([delta(A, 2, 4300, -5000), delta(B, 2, 4400, 300)], 0.1)
    out = em.flush(0.1)
    assert states(out) == [(True, "failover")], out
    assert all(t.valid for t in tops(out)) and tops(out)[-1].yes_bid == 4400
    assert ls.active_line(T) == "b"
    [fo] = ls.take_failovers()
    assert (fo.ticker, fo.from_line, fo.to_line, fo.why) == (T, "a", "b", "negative_level")
    # a comes back VALID: b keeps the market.
    ls.apply_many([snap(A, xseq=3, yes=4400)], 0.2)
    assert not states(em.flush(0.2)) and ls.active_line(T) == "b" and not ls.take_failovers()


def test_when_no_line_is_valid_the_active_lines_invalid_is_published_then_the_first_valid_wins() -> None:
    ls = lines()
    em = Emitter(ls)
    ls.apply_many([book_meta(T, pub="poller"), snap(A), snap(B)], 0.0)
    em.flush(0.0)
    ls.apply_many([delta(B, 2, 4300, -5000)], 0.1)  # the standby breaks: nothing published
    assert not states(em.flush(0.1))
    ls.apply_many([delta(A, 2, 4300, -5000)], 0.2)
    out = em.flush(0.2)
    assert states(out) == [(False, "negative_level")] and ls.active_line(T) == "a"
    ls.apply_many([snap(B, xseq=3)], 0.3)
    assert states(em.flush(0.3)) == [(True, "failover")] and ls.active_line(T) == "b"


def test_a_silent_collector_is_down_and_its_markets_fail_over() -> None:
    ls = lines()
    em = Emitter(ls)
    ls.heartbeat(A, True, 0.0)
    ls.heartbeat(B, True, 0.0)
    ls.apply_many([book_meta(T, pub="poller"), snap(A), snap(B)], 0.0)
    em.flush(0.0)
    ls.heartbeat(B, True, 2.5)
    assert ls.check_health(2.5) == []
    assert ls.check_health(3.5) == [A]
    out = em.flush(3.5)
    assert states(out) == [(True, "failover")] and ls.active_line(T) == "b"
    assert [f.why for f in ls.take_failovers()] == ["collector_down"]
    # No snapshot is asked of a collector that is gone.
    per, _ = ls.due_requests(10.0)
    assert "connector-a" not in per


def test_a_collector_not_connected_yet_is_starting_not_down() -> None:
    ls = lines()
    ls.heartbeat(A, False, 0.0)  # its first heartbeat: up, not connected to Kalshi yet
    assert ls.down == set()
    ls.heartbeat(A, True, 1.0)
    ls.heartbeat(A, False, 2.0)  # connected once, then not: that is down
    assert ls.down == {A}


def test_stale_generations_are_ignored_and_a_new_connection_rebuilds_its_line() -> None:
    ls = lines()
    em = Emitter(ls)
    ls.apply_many([book_meta(T, pub="poller"), snap(A)], 0.0)
    em.flush(0.0)
    ls.apply_many([snap(A, conn=150, yes=4200)], 0.1)  # a's new connection
    ls.apply_many([delta(A, 5, 4300, 100, conn=100)], 0.2)  # the old one, still in flight
    assert not states(em.flush(0.2))
    assert ls.builders["a"].counts["ignored.stale_conn"] == 1
    assert ls.books[T].valid and ls.books[T].conn == 150


def test_a_line_seen_late_gets_the_ladders_that_came_before_it() -> None:
    ls = lines()
    ls.apply_many([book_meta(T, pub="poller")], 0.0)  # a poller's meta: no line yet
    ls.apply_many([snap(B)], 0.1)
    assert ls.builders["b"].books[T].yes_ticks is not None
    assert not ls.seed.books


def test_the_unnamed_collector_and_its_shards_are_one_line() -> None:
    ls = lines()
    msgs: list[Any] = [
        book_meta(T, pub="poller"),
        BookSnapshot(ticker=T, market_id="m", conn=1, sid=1, xseq=1, yes=[], no=[], pub="connector-1"),
    ]
    ls.apply_many(msgs, 0.0)
    assert list(ls.builders) == [""] and ls.books[T].valid and ls.active_line(T) == ""


def test_a_market_one_collector_saw_close_is_closed_on_every_line() -> None:
    ls = lines()
    em = Emitter(ls)
    ls.apply_many([book_meta(T, pub="poller"), snap(A), snap(B)], 0.0)
    em.flush(0.0)
    closed = MarketLifecycle(ticker=T, event_type="determined", pub=A)
    ls.apply_many([closed], 0.1)
    out = em.flush(0.1)
    assert states(out) == [(False, "closed")] and [t.valid for t in tops(out)] == [False]
    assert T not in ls.books and T in ls.closed and not ls.take_failovers()
    assert all(T not in b.books for b in ls.builders.values())
