"""The pure core: every market's book from bus messages, with honest validity.

:meth:`Builder.apply_many` takes decoded bus messages (snapshots, deltas,
BookState, Gap, MarketMeta, MarketLifecycle, Trade) and a ``now`` (monotonic
seconds); it never touches a socket or a clock. What the shell must act on is left
in plain attributes:

- ``transitions``: VALID/INVALID changes, in order (the shell publishes ``bookstate``);
- ``dirty``: tickers whose top of book may have changed (the shell publishes ``tob``);
- :meth:`due_requests`: INVALID books whose snapshot request is due.

A book becomes INVALID on a delta without a snapshot (``no_snapshot``), a level that
would go negative (``negative_level``), a crossed or locked book (``crossed``), a
price off the market's ladder (``off_tick``), or when the connector/gap filler says
its data is incomplete (``BookState``/``Gap``, bus drops). An INVALID book ignores
deltas until a new snapshot replaces it.

The delta path is written out inline on purpose: it runs hundreds of thousands of
times a second, and a function call or a tuple per delta is a measurable share.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from shared.backoff import ceiling
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
from shared.units import ONE_DOLLAR

from .book import NO_HASH_KEY, MarketBook
from .ticks import PRICES, Ladder, LadderError, ladder

#: Lifecycle events / market statuses after which a market's book can be dropped.
CLOSED_EVENTS = frozenset({"determined", "settled"})
CLOSED_STATUSES = frozenset({"determined", "settled", "finalized"})
LADDER_EVENTS = frozenset({"created", "price_level_structure_updated"})


class Transition(NamedTuple):
    ticker: str
    valid: bool
    reason: str
    conn: int
    sid: int
    xseq: int
    trigger: Any  # the message that caused it (for ts_exch/ts_recv), or None


class Builder:
    def __init__(
        self,
        *,
        own_pub: str = "orderbook",
        resync_timeout_s: float = 2.0,
        resync_max_backoff_s: float = 30.0,
    ) -> None:
        #: BookState from publishers named so is ours (or another builder's) echo: skipped, or
        #: one builder's broken book would invalidate every other builder's good one.
        self.own_pub = own_pub
        self.resync_timeout_s = resync_timeout_s
        self.resync_max_backoff_s = resync_max_backoff_s
        self.books: dict[str, MarketBook] = {}
        self.ladders: dict[str, Ladder | None] = {}
        self.closed: set[str] = set()
        self.invalid: set[str] = set()
        self.dirty: set[str] = set()
        self.transitions: list[Transition] = []
        self.counts: dict[str, int] = {}
        self.deltas = 0
        self.unchecked = 0
        self.last_new_book = 0.0
        #: While a request for every book is outstanding, new INVALID books wait for it.
        self.hold_requests_until = 0.0

    # ---- counting --------------------------------------------------------------------------
    def count(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    # ---- the hot loop ----------------------------------------------------------------------
    def apply_many(self, msgs: Iterable[Any], now: float) -> None:
        books = self.books
        dirty_add = self.dirty.add
        applied = 0
        unchecked = 0
        for m in msgs:
            if type(m) is not BookDelta:
                self._other(m, now)
                continue
            b = books.get(m.ticker)
            if b is None or not b.valid or m.sid != b.sid or m.conn != b.conn or m.xseq <= b.xseq:
                b = self._admit(m, b, now)
                if b is None:
                    continue
            b.xseq = m.xseq
            price = m.price
            if m.side == "yes":
                levels = b.yes
                ticks = b.yes_ticks
                hk = price
                side = 0
            else:
                levels = b.no
                ticks = b.no_ticks
                hk = price + NO_HASH_KEY
                side = 1
            if ticks is None:
                unchecked += 1
                if not 0 < price < ONE_DOLLAR:
                    self._invalidate(b, "off_tick", m, now)
                    continue
            elif price not in ticks:
                self._invalidate(b, "off_tick", m, now)
                continue
            old = levels.get(price, 0)
            new = old + m.delta
            if new < 0:
                self._invalidate(b, "negative_level", m, now)
                continue
            h = b.hash
            if old:
                h ^= hash((hk, old))
            if new:
                h ^= hash((hk, new))
                if old:
                    levels[price] = new
                else:
                    levels[PRICES[price]] = new
            elif old:
                del levels[price]
            b.hash = h
            applied += 1
            # Only a change at or above the best bid moves the top; that message stamps the tob.
            # Inlined rather than a call per side: this is the per-delta hot path.
            best = b.best_no if side else b.best_yes
            if new and price > best:
                top = price
                rose = True
            elif price == best:
                top = price if new else (max(levels) if levels else 0)
                rose = False  # the best can only have fallen: no new crossing
            else:
                continue
            if side:
                b.best_no = top
            else:
                b.best_yes = top
            b.ts_exch = m.ts_exch
            b.ts_recv = m.ts_recv
            dirty_add(m.ticker)
            if rose and b.best_yes + b.best_no >= ONE_DOLLAR:
                self._invalidate(b, "crossed", m, now)
        self.deltas += applied
        self.unchecked += unchecked

    def apply(self, msg: Any, now: float) -> None:
        self.apply_many((msg,), now)

    # ---- deltas that are not the plain case -----------------------------------------------
    def _admit(self, m: BookDelta, b: MarketBook | None, now: float) -> MarketBook | None:
        """Decide what to do with a delta the fast path cannot take; the book to apply it to, or None."""
        if m.ticker in self.closed:
            self.count("ignored.closed_market")
            return None
        if b is None:
            b = self._new_book(m.ticker, m.market_id, now)
            self._invalidate(b, "no_snapshot", m, now, force=True)
            return None
        if not b.valid:
            self.count("ignored.invalid_book")
            return None
        if m.conn != b.conn or m.sid != b.sid:
            if m.conn < b.conn:
                # An older connection's delta still in flight (conn is the connection's start
                # time): its stream was replaced by the snapshot in force, not broken by it.
                self.count("ignored.stale_conn")
                return None
            if b.conn == 0 and b.sid == 0:
                # The book came from a REST snapshot: it joins the first subscription that updates it.
                b.conn, b.sid = m.conn, m.sid
                if m.xseq > b.xseq:
                    return b
            else:
                self._invalidate(b, "no_snapshot", m, now)
                return None
        # Already covered by the snapshot in force (in flight before a get_snapshot) or a duplicate.
        self.count("ignored.stale_delta")
        return None

    # ---- everything that is not a delta ---------------------------------------------------
    def _other(self, m: Any, now: float) -> None:
        t = type(m)
        if t is BookSnapshot:
            self._snapshot(m, now)
        elif t is BookState:
            if not m.valid and not m.pub.startswith(self.own_pub):
                b = self.books.get(m.ticker)
                if b is not None:
                    self._invalidate(b, m.reason or "upstream", m, now)
        elif t is Gap:
            if m.status == "open":
                self._gap(m, now)
        elif t is Trade:
            b = self.books.get(m.ticker)
            if b is not None:
                b.volume += m.count
        elif t is MarketMeta:
            if m.status in CLOSED_STATUSES:
                self.close_market(m.ticker, m, now)
            else:
                self.set_ladder(m.ticker, m.price_ranges)
        elif t is MarketLifecycle:
            if m.event_type in CLOSED_EVENTS:
                self.close_market(m.ticker, m, now)
            elif m.event_type in LADDER_EVENTS and m.price_ranges is not None:
                self.set_ladder(m.ticker, m.price_ranges)
        else:
            self.count("ignored.other_kind")

    def _new_book(self, ticker: str, market_id: str, now: float) -> MarketBook:
        b = MarketBook(ticker, market_id)
        lad = self.ladders.get(ticker)
        if lad is not None:
            b.yes_ticks, b.no_ticks = lad
        self.books[ticker] = b
        self.last_new_book = now
        self.invalid.add(ticker)
        b.invalid_since = now
        return b

    def _snapshot(self, m: BookSnapshot, now: float) -> None:
        if m.ticker in self.closed:
            self.count("ignored.closed_market")
            return
        b = self.books.get(m.ticker)
        if b is None:
            b = self._new_book(m.ticker, m.market_id, now)
        rest = m.source == "rest"
        if rest and b.valid:
            # REST books carry no seq, so they cannot be placed in the delta stream: a valid,
            # sequenced book is the better truth. They repair only what is already broken.
            self.count("ignored.rest_snapshot_book_valid")
            return
        if not rest and b.loads and m.conn == b.conn and m.sid == b.sid and m.xseq <= b.xseq:
            self.count("ignored.stale_snapshot")
            return
        if not rest and m.conn < b.conn:
            self.count("ignored.stale_conn")
            return
        self.count("snapshots." + ("rest" if rest else "ws"))
        if m.market_id:
            b.market_id = m.market_id
        reason = b.load(m.yes, m.no)
        b.loads += 1
        if not rest:
            b.conn, b.sid, b.xseq = m.conn, m.sid, m.xseq
        b.ts_exch, b.ts_recv = m.ts_exch, m.ts_recv
        b.updated = now
        b.seen_xseq = b.xseq
        self.dirty.add(m.ticker)
        if reason:
            self._invalidate(b, reason, m, now, force=True)
        elif not b.valid:
            b.valid = True
            b.reason = ""
            b.attempts = 0
            self.invalid.discard(m.ticker)
            self.transitions.append(Transition(m.ticker, True, "", b.conn, b.sid, b.xseq, m))

    def _gap(self, m: Gap, now: float) -> None:
        hit = set(m.tickers)
        for t, b in self.books.items():
            if t in hit or (b.conn == m.conn and b.sid == m.sid and (m.conn or m.sid)):
                self._invalidate(b, "gap", m, now)

    # ---- validity --------------------------------------------------------------------------
    def _invalidate(
        self, b: MarketBook, reason: str, trigger: Any, now: float, *, force: bool = False
    ) -> None:
        """Mark ``b`` INVALID. ``force`` records a transition even for a book that was never valid
        (a new book, or a snapshot that is itself broken)."""
        if not b.valid and not force:
            return
        self.count("invalid." + reason)
        was_valid = b.valid
        b.valid = False
        b.reason = reason
        if was_valid or b.attempts == 0:
            b.invalid_since = now
            b.retry_at = max(now, self.hold_requests_until)
        self.invalid.add(b.ticker)
        self.dirty.add(b.ticker)
        self.transitions.append(Transition(b.ticker, False, reason, b.conn, b.sid, b.xseq, trigger))

    def invalidate_book(self, b: MarketBook, reason: str, now: float) -> None:
        """Mark one book INVALID from outside the stream (its collector stopped, say)."""
        self._invalidate(b, reason, None, now)

    def invalidate_all(self, reason: str, now: float) -> int:
        """E.g. after a bus drop of book data: every book may be missing a delta."""
        n = 0
        for b in self.books.values():
            if b.valid:
                self._invalidate(b, reason, None, now)
                n += 1
        return n

    def due_requests(self, now: float) -> tuple[list[str], list[str]]:
        """INVALID books whose snapshot request is due: (ask the connector, ask the gap filler too).

        The first request goes to the connector (WS get_snapshot, sequenced); when the book is
        still INVALID ``resync_timeout_s`` later the request is repeated to both, with backoff.
        """
        connector: list[str] = []
        gapfill: list[str] = []
        for t in self.invalid:
            b = self.books[t]
            if b.retry_at > now:
                continue
            if b.attempts > 0:
                gapfill.append(t)
            connector.append(t)
            b.retry_at = now + ceiling(self.resync_timeout_s, self.resync_max_backoff_s, b.attempts)
            b.attempts += 1
        return connector, gapfill

    def hold_requests(self, now: float) -> None:
        """A request for every book just went out: per-book requests wait one timeout for it."""
        self.hold_requests_until = now + self.resync_timeout_s
        for t in self.invalid:
            b = self.books[t]
            b.retry_at = max(b.retry_at, self.hold_requests_until)

    # ---- market metadata -------------------------------------------------------------------
    def set_ladder(self, ticker: str, ranges: list[PriceRange]) -> None:
        try:
            lad = ladder(ranges)
        except LadderError:
            self.count("bad_price_ranges")
            lad = None
        self.ladders[ticker] = lad
        b = self.books.get(ticker)
        if b is not None:
            b.yes_ticks, b.no_ticks = lad if lad is not None else (None, None)

    def close_market(self, ticker: str, trigger: Any, now: float) -> None:
        """A determined/settled market trades no more: drop its book."""
        self.closed.add(ticker)
        self.ladders.pop(ticker, None)
        b = self.books.pop(ticker, None)
        self.invalid.discard(ticker)
        self.dirty.discard(ticker)
        if b is not None:
            self.count("closed_markets")
            self.transitions.append(Transition(ticker, False, "closed", b.conn, b.sid, b.xseq, trigger))

    def touch(self, now: float) -> None:
        """Stamp ``updated`` on books that moved since the last touch (kept off the delta path)."""
        for b in self.books.values():
            if b.xseq != b.seen_xseq:
                b.seen_xseq = b.xseq
                b.updated = now

    # ---- reading ---------------------------------------------------------------------------
    def valid_count(self) -> int:
        return len(self.books) - len(self.invalid)

    def take_transitions(self) -> list[Transition]:
        out = self.transitions
        self.transitions = []
        return out
