"""The sample stream with a sequence gap and a get_snapshot recovery.

Two markets share subscription sid 1. Delta seq 7 is lost on the way; the connector
sees seq 8, marks both books INVALID (BookState) and publishes a Gap, still forwards
what follows, then answers get_snapshot with fresh snapshots (seq 10, 11) and the
stream goes on. The builder must end VALID and equal to the exchange's truth, and
publish nothing as valid in between.
"""

from __future__ import annotations

from typing import Any

from services.orderbook.emit import Emitter
from shared.book.book import NO, YES, MarketBook
from shared.book.builder import Builder
from shared.messages import BookDelta, BookSnapshot, BookState, Gap, Message, Side, TopOfBook

A = "KXNFLGAME-25NOV23BUFHOU-BUF"
B = "KXNFLGAME-25NOV23BUFHOU-HOU"


def _delta(t: str, xseq: int, side: Side, price: int, d: int) -> BookDelta:
    return BookDelta(
        ticker=t,
        market_id=f"id-{t}",
        conn=1,
        sid=1,
        xseq=xseq,
        side=side,
        price=price,
        delta=d,
        ts_recv=1_000 + xseq,
        ts_exch=1_700_000_000_000 + xseq,
    )


def gap_sample_stream() -> tuple[list[Message], dict[str, MarketBook]]:
    """(what the builder receives, the exchange's true books at the end)."""
    truth = {A: MarketBook(A), B: MarketBook(B)}
    truth[A].load([(4300, 2500), (4200, 1000)], [(5500, 700)])
    truth[B].load([(5400, 600)], [(4400, 900), (4300, 100)])

    def snapshot(t: str, xseq: int) -> BookSnapshot:
        return BookSnapshot(
            ticker=t,
            market_id=f"id-{t}",
            conn=1,
            sid=1,
            xseq=xseq,
            yes=truth[t].levels(YES),
            no=truth[t].levels(NO),
            ts_recv=1_000 + xseq,
        )

    def move(t: str, xseq: int, side: Side, price: int, d: int) -> BookDelta:
        book = truth[t]
        lv = book.yes if side == "yes" else book.no
        lv[price] = lv.get(price, 0) + d
        if not lv[price]:
            del lv[price]
        book.load(book.levels(YES), book.levels(NO))
        return _delta(t, xseq, side, price, d)

    out: list[Message] = [snapshot(A, 1), snapshot(B, 2)]
    out += [
        move(A, 3, "yes", 4400, 300),
        move(B, 4, "no", 4400, -400),
        move(A, 5, "no", 5500, -200),
        move(B, 6, "yes", 5400, 50),
    ]
    move(A, 7, "yes", 4400, -300)  # lost between Kalshi and us
    out += [
        BookState(ticker=A, valid=False, reason="seq_gap", conn=1, sid=1, xseq=8, pub="connector"),
        BookState(ticker=B, valid=False, reason="seq_gap", conn=1, sid=1, xseq=8, pub="connector"),
        Gap(conn=1, sid=1, expected=7, received=8, tickers=[A, B], reason="seq_gap", pub="connector"),
        move(A, 8, "yes", 4300, 100),  # forwarded, but on a book known to be incomplete
        move(B, 9, "no", 4300, 25),
        snapshot(A, 10),  # the get_snapshot answers
        move(A, 11, "no", 5500, 100),  # A is whole again; B still waits for its snapshot
        snapshot(B, 12),
        move(B, 13, "yes", 5300, 10),
        move(A, 14, "yes", 4300, -50),
    ]
    return out, truth


def test_the_sample_stream_is_what_the_docstring_says() -> None:
    msgs, _ = gap_sample_stream()
    seqs = [getattr(m, "xseq", None) for m in msgs if isinstance(m, (BookDelta, BookSnapshot))]
    assert seqs == [1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14]
    assert [type(m).__name__ for m in msgs[6:9]] == ["BookState", "BookState", "Gap"]


def test_gap_then_get_snapshot_recovery_ends_valid_equal_to_the_truth_with_nothing_valid_between() -> None:
    msgs, truth = gap_sample_stream()
    b = Builder()
    em = Emitter(b)
    published: list[tuple[int, Any]] = []
    requested: list[str] = []
    for i, m in enumerate(msgs):
        b.apply(m, float(i))
        published += [(i, o) for o in em.flush(float(i))]
        requested += b.due_requests(float(i))[0]
    invalid_at = {
        t: min(i for i, o in published if isinstance(o, BookState) and o.ticker == t and not o.valid)
        for t in (A, B)
    }
    snap_at = {
        t: next(
            i for i, m in enumerate(msgs) if isinstance(m, BookSnapshot) and m.ticker == t and m.xseq >= 10
        )
        for t in (A, B)
    }
    for t in (A, B):
        between = [
            o for i, o in published if invalid_at[t] <= i < snap_at[t] and getattr(o, "ticker", "") == t
        ]
        assert between, "the transition to INVALID is published"
        assert not [o for o in between if getattr(o, "valid", False)], between
        tops = [o for o in between if isinstance(o, TopOfBook)]
        assert tops and all(o.yes_bid is None and o.yes_ask is None for o in tops)
        after = [o for i, o in published if i >= snap_at[t] and getattr(o, "ticker", "") == t]
        assert isinstance(after[0], BookState) and after[0].valid
    assert sorted(set(requested)) == [A, B]
    assert b.counts["ignored.invalid_book"] == 2  # seq 8 and 9
    for t in (A, B):
        book = b.books[t]
        assert book.valid
        assert book.levels(YES) == truth[t].levels(YES) and book.levels(NO) == truth[t].levels(NO)
        assert book.hash == truth[t].full_hash()
    last_tob = {o.ticker: o for _, o in published if isinstance(o, TopOfBook)}
    assert last_tob[A].valid and last_tob[A].yes_bid == truth[A].best_yes
    assert last_tob[B].valid and last_tob[B].no_bid == truth[B].best_no
