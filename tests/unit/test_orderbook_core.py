"""The builder core: book maths, validity rules, resync requests, metadata, compactness."""

from __future__ import annotations

from typing import Any

import pytest

from shared.book.book import NO, YES, MarketBook
from shared.book.builder import Builder
from shared.book.ticks import LadderError, ladder
from shared.messages import (
    BookDelta,
    BookSnapshot,
    BookState,
    Gap,
    MarketLifecycle,
    MarketMeta,
    PriceRange,
    Trade,
)
from tests.support.messages import CENT, book_meta

T = "KXNBAGAME-26NOV03LALBOS-LAL"


def snap(
    t: str = T, yes: Any = ((4300, 2500), (4200, 1000)), no: Any = ((5500, 700), (5000, 300)), **kw: Any
) -> BookSnapshot:
    args: dict[str, Any] = {
        "ticker": t,
        "market_id": "mid",
        "conn": 1,
        "sid": 1,
        "xseq": 1,
        "yes": list(yes),
        "no": list(no),
    }
    args.update(kw)
    return BookSnapshot(**args)


def delta(side: str, price: int, d: int, xseq: int, t: str = T, **kw: Any) -> BookDelta:
    args: dict[str, Any] = {
        "ticker": t,
        "market_id": "mid",
        "conn": 1,
        "sid": 1,
        "xseq": xseq,
        "side": side,
        "price": price,
        "delta": d,
    }
    args.update(kw)
    return BookDelta(**args)


def meta(t: str = T, ranges: list[PriceRange] | None = None, status: str = "active") -> MarketMeta:
    return book_meta(t, ranges, status)


def built(*msgs: Any) -> Builder:
    b = Builder()
    b.apply_many([meta(), snap(), *msgs], 1.0)
    return b


def test_snapshot_then_deltas_give_exact_levels_and_best_prices() -> None:
    b = built(delta("yes", 4400, 500, 2), delta("no", 5500, -700, 3), delta("yes", 4200, -400, 4))
    book = b.books[T]
    assert book.valid and book.reason == ""
    assert book.levels(YES) == [(4400, 500), (4300, 2500), (4200, 600)]
    assert book.levels(NO) == [(5000, 300)]
    assert book.top() == (4400, 500, 5000, 300)
    assert book.mid_x2() == 4400 + (10_000 - 5000)
    assert book.spread() == 5000 - 4400
    assert book.hash == book.full_hash()
    assert book.xseq == 4 and b.deltas == 3 and b.unchecked == 0


def test_hash_depends_on_the_book_not_on_how_it_was_built() -> None:
    by_deltas = Builder()
    by_deltas.apply_many(
        [meta(), snap(yes=[], no=[]), delta("yes", 4300, 2500, 2), delta("no", 5500, 700, 3)], 1.0
    )
    by_snapshot = Builder()
    by_snapshot.apply_many([meta(), snap(yes=[(4300, 2500)], no=[(5500, 700)])], 1.0)
    assert by_deltas.books[T].hash == by_snapshot.books[T].hash != 0
    # The same price on the other side, or another size, is another book.
    other = Builder()
    other.apply_many([meta(), snap(yes=[(4300, 2500)], no=[(4300, 700)])], 1.0)
    assert other.books[T].hash != by_snapshot.books[T].hash
    by_deltas.apply(delta("yes", 4300, 1, 4), 1.0)
    assert by_deltas.books[T].hash not in (0, by_snapshot.books[T].hash)
    by_deltas.apply(delta("yes", 4300, -1, 5), 1.0)
    assert by_deltas.books[T].hash == by_snapshot.books[T].hash


@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        (delta("yes", 4200, -1001, 2), "negative_level"),
        (delta("no", 4000, -1, 2), "negative_level"),
        (delta("yes", 4500, 10, 2), "crossed"),  # locked: YES bid = YES ask = $1 - 0.55
        (delta("yes", 4600, 10, 2), "crossed"),
        (delta("no", 5700, 10, 2), "crossed"),  # NO bid 0.57 + YES bid 0.43 = $1
        (delta("yes", 4250, 10, 2), "off_tick"),
        (delta("no", 5001, 10, 2), "off_tick"),
        (delta("yes", 4300, 10, 2, t="KXOTHER-1"), "no_snapshot"),
        (delta("yes", 4300, 10, 2, sid=7), "no_snapshot"),
        (delta("yes", 4300, 10, 2, conn=2), "no_snapshot"),
    ],
)
def test_every_broken_invariant_makes_the_book_invalid(msg: BookDelta, reason: str) -> None:
    b = built(msg)
    book = b.books[msg.ticker]
    assert not book.valid and book.reason == reason
    assert b.counts[f"invalid.{reason}"] == 1
    assert msg.ticker in b.invalid and msg.ticker in b.dirty
    tr = b.take_transitions()
    assert [(x.ticker, x.valid, x.reason) for x in tr][-1] == (msg.ticker, False, reason)
    assert tr[-1].trigger is msg


def test_snapshot_that_is_itself_broken_is_invalid() -> None:
    for bad, reason in [
        (snap(yes=[(4300, -5)]), "negative_level"),
        (snap(yes=[(4300, 5)], no=[(5700, 5)]), "crossed"),
        (snap(yes=[(4350, 5)]), "off_tick"),
    ]:
        b = Builder()
        b.apply_many([meta(), bad], 1.0)
        assert not b.books[T].valid and b.books[T].reason == reason


def test_invalid_book_ignores_deltas_until_a_new_snapshot_replaces_it() -> None:
    b = built(delta("yes", 4200, -5000, 2))  # negative
    before = b.books[T].levels(YES)
    b.apply_many([delta("yes", 4300, 100, 3), delta("no", 5000, 100, 4)], 2.0)
    assert b.books[T].levels(YES) == before and not b.books[T].valid
    assert b.counts["ignored.invalid_book"] == 2
    b.take_transitions()
    b.apply(snap(yes=[(4000, 100)], no=[(5900, 100)], xseq=5), 3.0)
    book = b.books[T]
    assert book.valid and book.levels(YES) == [(4000, 100)] and book.levels(NO) == [(5900, 100)]
    assert [(x.valid, x.reason) for x in b.take_transitions()] == [(True, "")]
    assert T not in b.invalid
    b.apply(delta("yes", 4000, 50, 6), 3.0)
    assert book.levels(YES) == [(4000, 150)]


def test_deltas_already_covered_by_the_snapshot_are_dropped_not_applied_twice() -> None:
    b = built()
    b.apply(snap(xseq=10), 1.0)
    b.apply_many([delta("yes", 4300, 100, 9), delta("yes", 4300, 100, 10), delta("yes", 4300, 100, 11)], 1.0)
    assert b.books[T].levels(YES)[0] == (4300, 2600)
    assert b.counts["ignored.stale_delta"] == 2
    # An older WS snapshot on the same subscription is stale too.
    b.apply(snap(yes=[(100, 1)], no=[], xseq=5), 1.0)
    assert b.books[T].levels(YES)[0] == (4300, 2600) and b.counts["ignored.stale_snapshot"] == 1


def test_rest_snapshot_repairs_an_invalid_book_but_never_overrides_a_valid_one() -> None:
    b = built()
    rest = snap(yes=[(1000, 1)], no=[], conn=0, sid=0, xseq=0, source="rest")
    b.apply(rest, 1.0)
    assert b.books[T].levels(YES)[0] == (4300, 2500)
    assert b.counts["ignored.rest_snapshot_book_valid"] == 1
    b.apply(BookState(ticker=T, valid=False, reason="seq_gap", conn=1, sid=1, xseq=5, pub="connector"), 2.0)
    assert not b.books[T].valid
    b.apply(rest, 2.0)
    book = b.books[T]
    assert book.valid and book.levels(YES) == [(1000, 1)] and (book.conn, book.sid) == (1, 1)
    b.apply(delta("yes", 1000, 5, 7), 2.0)  # the subscription keeps updating it
    assert book.levels(YES) == [(1000, 6)]


def test_rest_only_book_joins_the_first_subscription_that_updates_it() -> None:
    b = Builder()
    b.apply_many([meta(), snap(conn=0, sid=0, xseq=0, source="rest"), delta("yes", 4300, 5, 40, sid=3)], 1.0)
    book = b.books[T]
    assert (
        book.valid and (book.conn, book.sid, book.xseq) == (1, 3, 40) and book.levels(YES)[0] == (4300, 2505)
    )


def test_connector_bookstate_and_gap_invalidate_but_our_own_echo_does_not() -> None:
    b = built()
    b.apply(BookState(ticker=T, valid=False, reason="x", pub="orderbook"), 1.0)
    b.apply(BookState(ticker=T, valid=False, reason="x", pub="orderbook-2"), 1.0)
    assert b.books[T].valid
    b.apply(BookState(ticker=T, valid=True, pub="connector"), 1.0)
    assert b.books[T].valid
    b.apply(BookState(ticker=T, valid=False, reason="seq_gap", pub="connector"), 1.0)
    assert not b.books[T].valid and b.books[T].reason == "seq_gap"

    b = Builder()
    b.apply_many([meta(), snap(), snap(t="B", sid=2, yes=[], no=[]), snap(t="C", sid=1, yes=[], no=[])], 1.0)
    b.apply(Gap(conn=1, sid=1, expected=5, received=7, tickers=[], reason="seq_gap"), 2.0)
    assert {t for t, bk in b.books.items() if not bk.valid} == {T, "C"}
    b.apply(Gap(conn=1, sid=9, expected=5, received=7, tickers=["B"], reason="seq_gap"), 2.0)
    assert not b.books["B"].valid and b.books["B"].reason == "gap"


def test_snapshot_requests_go_to_the_connector_first_then_also_the_gap_filler_with_backoff() -> None:
    b = Builder(resync_timeout_s=2.0, resync_max_backoff_s=5.0)
    b.apply_many([meta(), snap(), delta("yes", 4200, -9999, 2)], 10.0)
    assert b.due_requests(10.0) == ([T], [])
    assert b.due_requests(11.9) == ([], [])
    assert b.due_requests(12.0) == ([T], [T])
    assert b.due_requests(15.9) == ([], [])  # backoff 4 s
    assert b.due_requests(16.0) == ([T], [T])
    assert b.due_requests(20.9) == ([], [])  # capped at 5 s
    assert b.due_requests(21.0) == ([T], [T])
    b.apply(snap(xseq=9), 21.5)
    assert b.due_requests(100.0) == ([], [])


def test_start_up_request_for_every_book_holds_back_per_book_requests() -> None:
    b = Builder(resync_timeout_s=2.0)
    b.hold_requests(10.0)
    b.apply(delta("yes", 4300, 5, 2), 10.1)  # no snapshot yet: the all-markets request covers it
    assert not b.books[T].valid and b.books[T].reason == "no_snapshot"
    assert b.due_requests(11.0) == ([], [])
    assert b.due_requests(12.0) == ([T], [])


def test_invalidate_all_after_a_bus_drop() -> None:
    b = built()
    b.apply(snap(t="B"), 1.0)
    assert b.invalidate_all("bus_drop", 2.0) == 2
    assert b.valid_count() == 0 and {bk.reason for bk in b.books.values()} == {"bus_drop"}


def test_ladder_checks_no_prices_on_the_yes_axis() -> None:
    # An asymmetric ladder: fine ticks only near $0 on the YES axis.
    ranges = [PriceRange(0, 1000, 10), PriceRange(1000, 10_000, 100)]
    b = Builder()
    b.apply_many([meta(ranges=ranges), snap(yes=[(50, 1)], no=[(9000, 1)])], 1.0)
    assert b.books[T].valid
    b.apply(delta("yes", 980, 1, 2), 1.0)  # YES 0.098: fine tick, on the ladder
    assert b.books[T].valid
    b.apply(delta("no", 9010, 1, 3), 1.0)  # NO 0.901 = YES ask 0.099: on the ladder
    assert b.books[T].valid, b.books[T].reason
    b.apply(delta("no", 990, 1, 4), 1.0)  # NO 0.099 = YES 0.901: not on the ladder
    assert b.books[T].reason == "off_tick"


def test_unknown_ladder_skips_the_tick_check_counts_it_and_still_rejects_impossible_prices() -> None:
    b = Builder()
    b.apply_many([snap(), delta("yes", 4250, 1, 2), delta("no", 5001, 1, 3)], 1.0)
    assert b.books[T].valid and b.unchecked == 2
    b.apply(delta("yes", 10_000, 1, 4), 1.0)
    assert b.books[T].reason == "off_tick"
    b2 = Builder()
    b2.apply_many([snap(), delta("no", 0, 1, 2)], 1.0)
    assert b2.books[T].reason == "off_tick"


def test_ladders_come_from_meta_and_lifecycle_and_bad_ones_are_counted() -> None:
    b = Builder()
    b.apply_many([snap(), meta(ranges=CENT)], 1.0)
    ticks = b.books[T].yes_ticks
    assert ticks is not None and 4300 in ticks
    deci = [PriceRange(0, 10_000, 10)]
    b.apply(MarketLifecycle(ticker=T, event_type="price_level_structure_updated", price_ranges=deci), 1.0)
    b.apply(delta("yes", 4310, 1, 2), 1.0)
    assert b.books[T].valid and b.unchecked == 0
    b.apply(MarketLifecycle(ticker=T, event_type="created", price_ranges=[PriceRange(10, 5, 1)]), 1.0)
    assert b.counts["bad_price_ranges"] == 1 and b.books[T].yes_ticks is None
    with pytest.raises(LadderError):
        ladder([PriceRange(0, 100, 0)])
    assert ladder([]) is None
    assert ladder(CENT) is ladder(list(CENT))  # shared between markets


def test_closed_markets_are_dropped_with_a_final_invalid_transition() -> None:
    b = built()
    b.take_transitions()
    b.apply(MarketLifecycle(ticker=T, event_type="determined", result="yes"), 5.0)
    assert T not in b.books and T in b.closed
    assert [(x.ticker, x.valid, x.reason) for x in b.take_transitions()] == [(T, False, "closed")]
    b.apply_many([delta("yes", 4300, 1, 9), snap(xseq=10)], 6.0)
    assert T not in b.books and b.counts["ignored.closed_market"] == 2
    b2 = Builder()
    b2.apply_many([snap(t="S"), meta(t="S", status="finalized")], 1.0)
    assert "S" not in b2.books


def test_trades_add_volume_to_known_books() -> None:
    b = built()
    b.apply_many(
        [
            Trade(trade_id="1", ticker=T, yes_price=4300, no_price=5700, count=250, taker_side="yes"),
            Trade(trade_id="2", ticker="UNKNOWN", yes_price=4300, no_price=5700, count=250, taker_side="yes"),
        ],
        1.0,
    )
    assert b.books[T].volume == 250 and "UNKNOWN" not in b.books


def test_touch_stamps_the_last_change_off_the_delta_path() -> None:
    b = built()
    assert b.books[T].updated == 1.0
    b.apply(delta("yes", 4300, 1, 2), 5.0)
    b.touch(6.0)
    assert b.books[T].updated == 6.0
    b.touch(9.0)
    assert b.books[T].updated == 6.0


def test_a_book_with_a_few_dozen_levels_costs_a_few_kilobytes() -> None:
    book = MarketBook(T, "mid")
    book.load(
        [(p, 1_000_000 + p) for p in range(100, 4100, 100)],
        [(p, 2_000_000 + p) for p in range(100, 4100, 100)],
    )
    assert len(book.yes) == len(book.no) == 40
    assert book.nbytes() < 8 * 1024, book.nbytes()
