"""A :class:`Recording` as the simulator's activity source: catalog, starting state, emissions.

The exchange front end (WebSocket sessions, the dispatcher, REST) stays the simulator's; this
replaces its engine. The catalog is rebuilt from the recorded ``MarketMeta`` (REST lists exactly
the recorded markets, so a discovering client finds them); the books and statistics at the
window's start are state-only emissions (a subscriber's snapshot is read from them); then each
recorded message becomes the emission the simulator would have sent for it, in recorded order:
a delta, a trade, a ticker. Per-subscription seqs are the dispatcher's own, so they are
contiguous whatever the recording's connections and sids were.

A snapshot inside the window (the recording connector resubscribed or recovered a gap) that
agrees with the book replayed so far changes nothing and is not sent; one that disagrees (the
recording lost deltas there) resets the book: state-only deltas to the recorded book, then the
snapshot itself on every subscription of that market, on its next seq. A delta that would take
a level below zero (also a loss in the recording) is skipped. Both are counted
(``kxfeed_replay_corrections_total``) and logged once per market.

Pacing: :meth:`ReplaySource.start` starts the clock; ``step`` (the paced loop) returns what is
due at ``speed`` times the recorded pace, ``run`` (blast, ``speed`` None) the next messages
as fast as the clients read them.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import Counter

from services.exchange_sim import frames
from services.exchange_sim.emission import (
    CH_BOOK,
    CH_TICKER,
    CH_TRADE,
    K_DELTA,
    K_INIT,
    K_TICKER,
    K_TRADE,
    NO,
    P_DELTA,
    P_SNAPSHOT,
    P_TICKER,
    P_TRADE,
    YES,
    Emission,
    LifeChange,
    TradeRec,
)
from services.exchange_sim.event_model import EventModel
from services.exchange_sim.replay_catalog import catalog
from services.exchange_sim.replay_frames import BodyCache
from services.exchange_sim.replay_record import Book, Recording, ReplayError
from services.exchange_sim.state import ExchangeState, MarketState
from shared.messages import BookDelta, BookSnapshot, Ticker, Trade

#: Not a state change: a recorded snapshot sent to the market's book subscriptions.
K_RESNAPSHOT = 100
#: Most messages one paced step hands over (the loop must come back to feed the sockets).
STEP_LIMIT = 4096

REPLAYED = Counter("kxfeed_replay_messages_total", "Recorded messages replayed", ["kind"])
CORRECTIONS = Counter(
    "kxfeed_replay_corrections_total",
    "Places where the recording lost data and replay put its book right",
    ["reason"],
)


class ReplaySource:
    """``state``: the exchange state the emissions are encoded against (the simulator's public
    state, set by :meth:`attach` once the server has built it from :attr:`initial_events`)."""

    def __init__(
        self,
        rec: Recording,
        speed: float | None,
        log: logging.Logger,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if speed is not None and not 0 < speed <= 1_000_000:
            raise ReplayError(f"speed must be above 0 and at most 1000000 (or max), not {speed}")
        self.rec = rec
        self.speed = speed
        self.log = log
        self._clock = clock
        self.initial_events, self.extra_series = catalog(rec, set())
        self.planted: list[dict[str, Any]] = []
        self.run_no = 0
        self.state: ExchangeState | None = None
        self._books: dict[str, tuple[Book, Book]] = {}
        self._oi: dict[str, int] = {}
        self._it: Iterator[Any] = iter(())
        self._next: Any = None
        self.started_at: float | None = None
        self.finished = False
        #: Called once, when the last recorded message has been handed over.
        self.on_end: Callable[[], None] = lambda: None
        self.sent = 0
        self._corrected: set[tuple[str, str]] = set()
        #: Markets whose starting book is their first snapshot in the window, not reached yet.
        self._awaiting: set[str] = set()
        self._bodies = BodyCache()
        self._kinds: collections.Counter[type] = collections.Counter()

    # ---- set-up ------------------------------------------------------------------------------
    def attach(self, state: ExchangeState) -> None:
        for s in self.extra_series:
            state.series.setdefault(s.ticker, s)
        self.state = state

    def initial_emissions(self, now_ms: int) -> list[Emission]:
        """Statistics and books at the window's start (state only: nobody is connected yet)."""
        rec = self.rec
        out: list[Emission] = []
        books = rec.books
        self._awaiting = set(rec.seeded)
        self._it = rec.messages()
        self._next = next(self._it, None)
        for ticker in rec.markets:
            st = rec.stats.get(ticker)
            if st is not None:
                fields = {
                    "volume": st.volume,
                    "oi": st.open_interest,
                    "last_price": st.price or 0,
                    "last_size": st.last_trade_size,
                }
                out.append(
                    Emission(K_INIT, CH_TICKER, ticker, P_TICKER, None, LifeChange("market", ticker, fields))
                )
                self._oi[ticker] = st.open_interest
            yes, no = books.get(ticker, ({}, {}))
            self._books[ticker] = ({}, {})
            for side, levels in ((YES, yes), (NO, no)):
                for price, size in sorted(levels.items()):
                    out.append(self._state_delta(ticker, side, price, size))
        return out

    def _state_delta(self, ticker: str, side: int, price: int, delta: int) -> Emission:
        book = self._books[ticker][0 if side == YES else 1]
        size = book.get(price, 0) + delta
        if size:
            book[price] = size
        else:
            book.pop(price, None)
        return Emission(K_DELTA, CH_BOOK, ticker, P_DELTA, None, (side, price, delta), seq=True)

    # ---- pacing ------------------------------------------------------------------------------
    def start(self) -> None:
        if self.started_at is None:
            self.started_at = self._clock()

    def due_ns(self) -> int:
        """The recorded receive time replay has reached (paced)."""
        if self.started_at is None or self.speed is None:
            return 0
        since = self.rec.window.since or self.rec.first_ns
        return since + int((self._clock() - self.started_at) * self.speed * 1e9)

    def step(self, now_ms: int) -> list[Emission]:
        if self.started_at is None or self.finished:
            return []
        if self.speed is None:
            return self.run(STEP_LIMIT, now_ms)
        due = self.due_ns()
        out: list[Emission] = []
        n = 0
        while self._next is not None and self._next.ts_recv <= due and n < STEP_LIMIT:
            self._emit(self._next, out)
            n += 1
            self._advance()
        self._count()
        return out

    def run(self, n: int, now_ms: int) -> list[Emission]:
        """The next ``n`` recorded messages (blast: as fast as the clients read)."""
        out: list[Emission] = []
        if self.started_at is None or self.finished:
            return out
        for _ in range(n):
            if self._next is None:
                break
            self._emit(self._next, out)
            self._advance()
        self._count()
        return out

    def _advance(self) -> None:
        self._next = next(self._it, None)
        if self._next is None and not self.finished:
            self.finished = True
            self.on_end()

    def sports_models(self) -> list[EventModel]:
        return []  # a recording has no sportsbook consensus to quote

    # ---- one message -------------------------------------------------------------------------
    def _emit(self, m: Any, out: list[Emission]) -> None:
        state = self.state
        if state is None:
            raise RuntimeError("ReplaySource.attach(state) was not called")
        market = state.markets.get(m.ticker)
        if market is None:
            return  # not a replayed market (filtered by --tickers at load)
        self.sent += 1
        kind = type(m)
        self._kinds[kind] += 1
        if kind is BookDelta:
            self._delta(market, m, out)
        elif kind is Trade:
            oi = self._oi.get(m.ticker, market.oi)
            ts_ms = m.ts_exch if m.ts_exch is not None else m.ts_recv // 1_000_000
            rec = TradeRec(
                m.trade_id, m.ticker, m.yes_price, m.count, m.taker_side == "yes", ts_ms, oi, m.is_block_trade
            )
            out.append(Emission(K_TRADE, CH_TRADE, m.ticker, P_TRADE, frames.trade_body(rec), rec, seq=True))
        elif kind is Ticker:
            self._oi[m.ticker] = m.open_interest
            ts_ms = m.ts_exch if m.ts_exch is not None else m.ts_recv // 1_000_000
            out.append(
                Emission(K_TICKER, CH_TICKER, m.ticker, P_TICKER, self._bodies.ticker(market, m), ts_ms)
            )
        elif kind is BookSnapshot:
            self._snapshot(market, m, out)

    def _count(self) -> None:
        """Counted per message, exported per batch (a labelled inc costs more than the frame)."""
        for kind, n in self._kinds.items():
            if n:
                REPLAYED.labels(kind.__struct_config__.tag).inc(n)  # type: ignore[attr-defined]
                self._kinds[kind] = 0

    def _delta(self, market: MarketState, m: BookDelta, out: list[Emission]) -> None:
        if m.ticker in self._awaiting:
            self._correct(m.ticker, "delta_before_snapshot", xseq=m.xseq)
            return
        yes = m.side == "yes"
        price = m.price
        delta = m.delta
        book = self._books[m.ticker][0 if yes else 1]
        size = book.get(price, 0) + delta
        if size < 0:
            self._correct(m.ticker, "delta_below_zero", price=price, side=m.side, delta=delta)
            return
        if size:
            book[price] = size
        else:
            book.pop(price, None)
        ts_ms = m.ts_exch if m.ts_exch is not None else m.ts_recv // 1_000_000
        body, body_yp = self._bodies.delta(market, yes, price, delta, ts_ms)
        out.append(
            Emission(
                K_DELTA,
                CH_BOOK,
                m.ticker,
                P_DELTA,
                body,
                (YES if yes else NO, price, delta),
                seq=True,
                body_yp=body_yp,
            )
        )

    def _snapshot(self, market: MarketState, m: BookSnapshot, out: list[Emission]) -> None:
        self._awaiting.discard(m.ticker)
        yes, no = self._books[m.ticker]
        want_yes, want_no = dict(m.yes), dict(m.no)
        if yes == want_yes and no == want_no:
            return  # a resubscription's snapshot: the book replayed so far already is this
        self._correct(m.ticker, "snapshot_differs", xseq=m.xseq)
        for side, have, want in ((YES, yes, want_yes), (NO, no, want_no)):
            for price in sorted(set(have) | set(want)):
                diff = want.get(price, 0) - have.get(price, 0)
                if diff:
                    out.append(self._state_delta(m.ticker, side, price, diff))
        # The body is encoded now, from the recorded book; the state reaches it as the
        # state-only deltas above are dispatched, before this is.
        shadow = _Levels(market, want_yes, want_no)
        out.append(
            Emission(
                K_RESNAPSHOT,
                CH_BOOK,
                m.ticker,
                P_SNAPSHOT,
                frames.snapshot_body(shadow, False),  # type: ignore[arg-type]  # duck-typed book
                None,
                seq=True,
                body_yp=frames.snapshot_body(shadow, True),  # type: ignore[arg-type]
            )
        )

    def _correct(self, ticker: str, reason: str, **ctx: Any) -> None:
        CORRECTIONS.labels(reason).inc()
        if (ticker, reason) not in self._corrected:
            self._corrected.add((ticker, reason))
            self.log.warning(
                "replay: the recording lost data here; the book is put right from it (once per market)",
                extra={"ctx": {"ticker": ticker, "reason": reason, **ctx}},
            )


class _Levels:
    """What :func:`frames.snapshot_body` reads of a market: its definition and two book sides."""

    __slots__ = ("d", "no", "yes")

    def __init__(self, market: MarketState, yes: Book, no: Book) -> None:
        self.d = market.d
        self.yes = yes
        self.no = no
