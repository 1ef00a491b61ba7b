"""What the builder publishes: bookstate on transitions, tob when the top changes, depth.

Pure: turns the builder's ``transitions`` and ``dirty`` set into bus messages, given
``now``. Every output carries the ``ts_exch``/``ts_recv`` of the input that caused
it, so a consumer can measure receive -> book latency.

An INVALID book's top is published once as ``valid=False`` with no prices: nothing
of a broken book is ever published as if it were true.
"""

from __future__ import annotations

from typing import Any

from shared.book.book import NO, YES, MarketBook
from shared.book.builder import Builder
from shared.messages import BookState, Depth, Message, TopOfBook
from shared.units import ONE_DOLLAR

from .lines import Lines

TopKey = tuple[bool, int, int, int, int]


def _stamp(trigger: Any) -> tuple[int | None, int]:
    if trigger is None:
        return None, 0
    return trigger.ts_exch, trigger.ts_recv


def top_of_book(b: MarketBook) -> TopOfBook:
    return _top(b, top_key(b))


def _top(b: MarketBook, key: TopKey) -> TopOfBook:
    ts_exch, ts_recv = b.ts_exch, b.ts_recv
    valid, by, bys, bn, bns = key
    if not valid:
        return invalid_top(b.ticker, b.xseq, ts_exch, ts_recv)
    yes_ask = ONE_DOLLAR - bn if bn else None
    mid_x2 = spread = None
    if by and yes_ask is not None:
        mid_x2 = by + yes_ask
        spread = yes_ask - by
    # Positional: this runs for every changed top, and keywords cost a measurable share.
    return TopOfBook(
        b.ticker,
        b.xseq,
        True,
        by or None,
        bys,
        yes_ask,
        bns,
        bn or None,
        ONE_DOLLAR - by if by else None,
        mid_x2,
        spread,
        ts_exch=ts_exch,
        ts_recv=ts_recv,
    )


def invalid_top(ticker: str, xseq: int, ts_exch: int | None, ts_recv: int) -> TopOfBook:
    return TopOfBook(
        ticker=ticker,
        xseq=xseq,
        valid=False,
        yes_bid=None,
        yes_bid_size=0,
        yes_ask=None,
        yes_ask_size=0,
        no_bid=None,
        no_ask=None,
        mid_x2=None,
        spread=None,
        ts_exch=ts_exch,
        ts_recv=ts_recv,
    )


INVALID_KEY: TopKey = (False, 0, 0, 0, 0)


def top_key(b: MarketBook) -> TopKey:
    if not b.valid:
        return INVALID_KEY
    by, bn = b.best_yes, b.best_no
    return (True, by, b.yes[by] if by else 0, bn, b.no[bn] if bn else 0)


class Emitter:
    """Turns builder state into messages. ``min_publish_interval`` > 0 coalesces tob per market."""

    def __init__(
        self, builder: Builder | Lines, *, min_publish_interval: float = 0.0, depth_levels: int = 10
    ) -> None:
        self.builder = builder
        self.min_publish_interval = min_publish_interval
        self.depth_levels = depth_levels
        self.pending: set[str] = set()  # top changed, held back by min_publish_interval

    def flush(self, now: float) -> list[Message]:
        """Messages due now: bookstate for every transition, then tob for changed tops."""
        out: list[Message] = []
        b_ = self.builder
        urgent: set[str] = set()
        for tr in b_.take_transitions():
            ts_exch, ts_recv = _stamp(tr.trigger)
            out.append(
                BookState(
                    ticker=tr.ticker,
                    valid=tr.valid,
                    reason=tr.reason,
                    conn=tr.conn,
                    sid=tr.sid,
                    xseq=tr.xseq,
                    ts_exch=ts_exch,
                    ts_recv=ts_recv,
                )
            )
            urgent.add(tr.ticker)
            if tr.ticker not in b_.books:  # closed market: its last word is "not valid"
                out.append(invalid_top(tr.ticker, tr.xseq, ts_exch, ts_recv))
                self.pending.discard(tr.ticker)
        dirty = b_.dirty
        if self.pending:
            dirty |= self.pending
            self.pending = set()
        interval = self.min_publish_interval
        books = b_.books
        for t in dirty:
            b = books.get(t)
            if b is None:
                continue
            key = top_key(b)
            if key == b.tob_sent:
                continue
            # Validity changes go out at once; only price/size churn is coalesced.
            if interval > 0 and now < b.tob_next and t not in urgent:
                self.pending.add(t)
                continue
            b.tob_sent = key
            b.tob_next = now + interval
            out.append(_top(b, key))
        dirty.clear()
        return out

    def next_due(self) -> bool:
        """True when coalesced tops are waiting (the shell then flushes on its timer)."""
        return bool(self.pending)

    def depth(self) -> list[Depth]:
        """Top N levels of every VALID book that changed since its last depth message."""
        out: list[Depth] = []
        n = self.depth_levels
        for b in self.builder.books.values():
            if not b.valid:
                continue
            if b.hash == b.depth_sent:  # the same levels (a move and its undo included)
                continue
            b.depth_sent = b.hash
            ts_exch, ts_recv = b.ts_exch, b.ts_recv
            out.append(
                Depth(
                    ticker=b.ticker,
                    xseq=b.xseq,
                    valid=True,
                    yes=b.levels(YES, n),
                    no=b.levels(NO, n),
                    ts_exch=ts_exch,
                    ts_recv=ts_recv,
                )
            )
        return out
