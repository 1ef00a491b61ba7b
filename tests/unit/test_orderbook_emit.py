"""What the builder publishes: tob on top changes only, honest INVALID, coalescing, depth."""

from __future__ import annotations

from typing import Any

from services.orderbook.emit import Emitter
from shared.book.builder import Builder
from shared.messages import BookState, Depth, MarketLifecycle, TopOfBook
from tests.unit.test_orderbook_core import T, delta, meta, snap


def setup(**kw: Any) -> tuple[Builder, Emitter]:
    b = Builder()
    em = Emitter(b, **kw)
    b.apply(meta(), 0.0)
    return b, em


def tobs(out: list[Any]) -> list[TopOfBook]:
    return [m for m in out if isinstance(m, TopOfBook)]


def test_first_snapshot_publishes_valid_state_and_an_exact_top_stamped_with_its_input() -> None:
    b, em = setup()
    b.apply(snap(xseq=3, ts_exch=1_700_000_000_123, ts_recv=42), 1.0)
    out: list[Any] = em.flush(1.0)
    assert [type(m) for m in out] == [BookState, TopOfBook]
    state, tob = out
    assert isinstance(state, BookState) and isinstance(tob, TopOfBook)
    assert (state.ticker, state.valid, state.reason, state.xseq, state.ts_recv) == (T, True, "", 3, 42)
    assert tob.valid and tob.xseq == 3
    assert (tob.yes_bid, tob.yes_bid_size, tob.yes_ask, tob.yes_ask_size) == (4300, 2500, 4500, 700)
    assert (tob.no_bid, tob.no_ask, tob.mid_x2, tob.spread) == (5500, 5700, 8800, 200)
    assert (tob.ts_exch, tob.ts_recv) == (1_700_000_000_123, 42)
    assert tob.topic() == f"tob.{T}"


def test_tob_only_when_the_top_changes() -> None:
    b, em = setup()
    b.apply(snap(), 1.0)
    em.flush(1.0)
    b.apply(delta("yes", 4200, 100, 2), 1.1)  # below the best: no new top
    b.apply(delta("no", 5000, -300, 3), 1.1)
    assert em.flush(1.1) == []
    b.apply(delta("yes", 4300, 5, 4, ts_recv=77), 1.2)  # size at the best
    (tob,) = tobs(em.flush(1.2))
    assert tob.yes_bid_size == 2505 and tob.xseq == 4 and tob.ts_recv == 77
    b.apply_many([delta("yes", 4400, 5, 5), delta("yes", 4400, -5, 6)], 1.3)  # up and back within one batch
    assert em.flush(1.3) == []
    b.apply(delta("no", 4000, 10, 7), 1.4)
    b.apply(delta("no", 5500, -700, 8), 1.4)  # best NO bid gone: the YES ask moves out to $1 - 0.40
    (tob,) = tobs(em.flush(1.4))
    assert (tob.yes_ask, tob.yes_ask_size, tob.no_bid, tob.mid_x2) == (6000, 10, 4000, 4300 + 6000)


def test_one_sided_book_has_no_mid_or_spread() -> None:
    b, em = setup()
    b.apply(snap(no=[]), 1.0)
    (tob,) = tobs(em.flush(1.0))
    assert tob.valid and tob.yes_bid == 4300 and tob.yes_ask is None and tob.no_bid is None
    assert tob.no_ask == 5700 and tob.mid_x2 is None and tob.spread is None


def test_invalid_book_publishes_state_and_an_empty_invalid_top_once() -> None:
    b, em = setup()
    b.apply(snap(), 1.0)
    em.flush(1.0)
    b.apply(delta("yes", 4300, -9999, 2, ts_recv=99), 2.0)
    out: list[Any] = em.flush(2.0)
    assert [type(m) for m in out] == [BookState, TopOfBook]
    state, tob = out
    assert isinstance(state, BookState) and isinstance(tob, TopOfBook)
    assert not state.valid and state.reason == "negative_level" and state.ts_recv == 99
    assert not tob.valid and tob.yes_bid is tob.yes_ask is tob.no_bid is tob.mid_x2 is None
    b.apply_many([delta("yes", 4300, 5, 3), delta("yes", 4800, 5, 4)], 3.0)
    assert em.flush(3.0) == []


def test_min_publish_interval_coalesces_churn_but_never_delays_validity_changes() -> None:
    b, em = setup(min_publish_interval=1.0)
    b.apply(snap(), 10.0)
    assert len(tobs(em.flush(10.0))) == 1
    b.apply(delta("yes", 4300, 1, 2), 10.2)
    assert em.flush(10.2) == [] and em.next_due()
    b.apply(delta("yes", 4300, 1, 3), 10.5)
    assert em.flush(10.5) == []
    (tob,) = tobs(em.flush(11.0))  # the timer's flush: one message with the latest state
    assert tob.yes_bid_size == 2502 and tob.xseq == 3 and not em.next_due()
    b.apply(delta("yes", 4300, 1, 4), 11.1)
    assert em.flush(11.1) == []
    b.apply(delta("no", 5700, 1, 5), 11.2)  # crossed: published at once
    out: list[Any] = em.flush(11.2)
    assert [(type(m).__name__, m.valid) for m in out] == [("BookState", False), ("TopOfBook", False)]


def test_depth_lists_top_levels_of_changed_valid_books_only() -> None:
    b, em = setup(depth_levels=1)
    b.apply_many([snap(), snap(t="B", sid=2), snap(t="C", sid=3)], 1.0)
    b.apply(delta("yes", 4300, -9999, 2, t="C", sid=3), 1.0)
    em.flush(1.0)
    first = em.depth()
    assert {d.ticker for d in first} == {T, "B"} and len(first) == 2
    d = next(x for x in first if x.ticker == T)
    assert isinstance(d, Depth) and d.valid and d.yes == [(4300, 2500)] and d.no == [(5500, 700)]
    assert em.depth() == []
    b.apply(delta("no", 5000, 1, 2), 2.0)
    assert [x.ticker for x in em.depth()] == [T]


def test_closed_market_last_word_is_not_valid() -> None:
    b, em = setup()
    b.apply(snap(), 1.0)
    em.flush(1.0)
    b.apply(MarketLifecycle(ticker=T, event_type="settled", ts_recv=5), 2.0)
    out: list[Any] = em.flush(2.0)
    assert [(type(m).__name__, m.valid) for m in out] == [("BookState", False), ("TopOfBook", False)]
    assert out[0].reason == "closed" and out[1].ts_recv == 5
