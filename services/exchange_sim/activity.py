"""The market model: fair probabilities that move, market makers that quote, takers that trade.

:class:`Engine` is pure and deterministic: the same seed gives the same
sequence of emissions; wall time enters only as the ``now_ms`` stamped into
frames. Trade ids are the one exception to "same seed, same frames": they are mixed
with a ``run`` number (the server draws a new one at every start), because Kalshi's
trade ids are unique forever and a store keyed on them would otherwise take a
restarted simulator's trades for the previous run's. The mixing draws nothing from
the rng, so the market (books, prices, sizes, times) is the same for a seed whatever
the run. Each :meth:`Engine.step` makes exactly one book change (a quote, a
cancel or a trade) plus the ticker/trade frames it implies; every
``lifecycle_every`` steps a lifecycle action runs (see :mod:`.lifecycle`).
"""

from __future__ import annotations

import heapq
import logging
import random
import uuid
from typing import Any

from services.exchange_sim import frames
from services.exchange_sim.catalog import CatalogFactory, EventDef, anchor_ms
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
    P_TICKER,
    P_TRADE,
    YES,
    Emission,
    LifeChange,
    TradeRec,
)
from services.exchange_sim.event_model import EventModel
from services.exchange_sim.lifecycle import Lifecycle
from services.exchange_sim.pricing import max_price, min_price, snap_down, taker_fee, tick_at
from services.exchange_sim.state import ExchangeState, MarketState
from shared.units import ONE_DOLLAR

MAX_LEVELS = 14
MAX_LEVEL_SIZE = 500_000  # hundredths: 5,000 contracts


class Engine:
    def __init__(
        self,
        seed: int,
        n_markets: int,
        *,
        start_ms: int = 0,
        lifecycle_every: int = 400,
        planted_edge: int = 400,
        planted_edge_every: int = 4,
        planted_arb_every: int = 5,
        run: int = 0,
        log: logging.Logger | None = None,
    ) -> None:
        self.rng = random.Random(f"kxfeed-sim-activity:{seed}")
        self.run_no = run
        # XORed into each trade id's 128 random bits; run 0 leaves them as the seed gives them.
        self._run_mask = random.Random(f"kxfeed-sim-run:{run}").getrandbits(128) if run else 0
        self.factory = CatalogFactory(seed, anchor_ms(start_ms))
        self.initial_events = self.factory.initial(n_markets)
        self.state = ExchangeState(self.initial_events)
        self.models: dict[str, EventModel] = {}
        self.market_event: dict[str, tuple[EventModel, int]] = {}
        self.active: list[str] = []
        self.step_no = 0
        self.lifecycle_every = lifecycle_every
        self.planted_edge = planted_edge
        self.edge_every = planted_edge_every
        self.arb_every = planted_arb_every
        self.planted: list[dict[str, Any]] = []
        self._sports_seen = 0
        self.due: list[tuple[int, int, str, str]] = []  # (step, tiebreak, action, key)
        self._due_n = 0
        self.log = log or logging.getLogger("kxfeed.sim.activity")
        self.lifecycle = Lifecycle(self)
        for ev in self.initial_events:
            self.adopt(ev)

    # ---- set-up -----------------------------------------------------------------------------
    def adopt(self, ev: EventDef) -> EventModel:
        model = EventModel(ev)
        self.models[ev.event_ticker] = model
        for i, m in enumerate(ev.markets):
            self.market_event[m.ticker] = (model, i)
            self.active.append(m.ticker)
        if ev.sport_key:
            self._sports_seen += 1
            k = self._sports_seen
            if self.arb_every and k % self.arb_every == 0:
                n = len(ev.markets)
                worst_fee = taker_fee(ONE_DOLLAR // 2)
                # Ask = center + one tick; shifting every center down by tick + fee + margin
                # leaves the outcomes' YES asks summing below $1 even after taker fees.
                model.arb_shift = 100 + worst_fee + 100 // n + 50
                self._plant({"kind": "arb", "event_ticker": ev.event_ticker, "shift": model.arb_shift})
            elif self.edge_every and k % self.edge_every == 0:
                model.edge = self.planted_edge
                self._plant(
                    {
                        "kind": "edge",
                        "event_ticker": ev.event_ticker,
                        "market_ticker": ev.markets[0].ticker,
                        "edge": self.planted_edge,
                    }
                )
        return model

    def _plant(self, item: dict[str, Any]) -> None:
        self.planted.append(item)
        self.log.info("planted mispricing", extra={"ctx": item})

    def initial_emissions(self, now_ms: int) -> list[Emission]:
        """Starting books and statistics (state only: nobody is connected yet)."""
        out: list[Emission] = []
        rng = self.rng
        for ticker in list(self.active):
            m = self.state.markets[ticker]
            last = self._center(ticker)
            vol = rng.randrange(0, 50_000) * 100
            stats = {
                "volume": vol,
                "oi": vol // 3,
                "last_price": last if vol else 0,
                "last_size": rng.randrange(1, 100) * 100 if vol else 0,
                "dollar_volume": vol * last,
                "prev_yes_bid": max(min_price(m.ranges()), snap_down(m.ranges(), last - 300)),
                "prev_yes_ask": min(max_price(m.ranges()), snap_down(m.ranges(), last + 300)),
                "prev_price": last,
            }
            self.emit(
                out, Emission(K_INIT, CH_TICKER, ticker, P_TICKER, None, LifeChange("market", ticker, stats))
            )
            out.extend(self.quote_book(ticker, now_ms, send=False))
        return out

    def quote_book(self, ticker: str, now_ms: int, *, send: bool = True) -> list[Emission]:
        """Fresh market-maker ladders on both sides of an empty book."""
        out: list[Emission] = []
        rng = self.rng
        m = self.state.markets[ticker]
        c = self._center(ticker)
        for side, ref in ((YES, c), (NO, ONE_DOLLAR - c)):
            ranges = m.ranges()
            p = snap_down(ranges, ref - tick_at(ranges, ref))
            for _ in range(rng.randrange(3, 8)):
                if p < min_price(ranges):
                    break
                self._delta(out, m, side, p, self._size(), now_ms, send=send)
                p = snap_down(ranges, p - tick_at(ranges, p) * rng.randrange(1, 3))
        if send:
            self._ticker(out, m, now_ms)
        return out

    # ---- the step ---------------------------------------------------------------------------
    def step(self, now_ms: int) -> list[Emission]:
        self.step_no += 1
        out: list[Emission] = []
        while self.due and self.due[0][0] <= self.step_no:
            _, _, action, key = heapq.heappop(self.due)
            self.lifecycle.run_due(action, key, now_ms, out)
        if self.lifecycle_every and self.step_no % self.lifecycle_every == 0:
            self.lifecycle.act(now_ms, out)
        if self.active:
            self._activity(now_ms, out)
        return out

    def run(self, n: int, now_ms: int) -> list[Emission]:
        out: list[Emission] = []
        for _ in range(n):
            out.extend(self.step(now_ms))
        return out

    def schedule(self, after_steps: int, action: str, key: str) -> None:
        self._due_n += 1
        heapq.heappush(self.due, (self.step_no + max(1, after_steps), self._due_n, action, key))

    def _activity(self, now_ms: int, out: list[Emission]) -> None:
        rng = self.rng
        ticker = rng.choice(self.active)
        m = self.state.markets[ticker]
        model, _ = self.market_event[ticker]
        if rng.random() < 0.03:
            self._move_fair(model)
        r = rng.random()
        if r < 0.2 and self._trade(m, now_ms, out):
            return
        if r < 0.5 and self._cancel(m, now_ms, out):
            return
        if not self._add(m, now_ms, out):
            self._cancel(m, now_ms, out) or self._trade(m, now_ms, out)

    def _move_fair(self, model: EventModel) -> None:
        d = self.rng.randrange(-150, 151, 10)
        f = model.fair
        if model.d.mutually_exclusive and len(f) >= 2:
            d = max(300 - f[0], min(d, f[1] - 300))
            f[0] += d
            f[1] -= d
        else:
            i = self.rng.randrange(len(f))
            f[i] = max(300, min(ONE_DOLLAR - 300, f[i] + d))

    def _center(self, ticker: str) -> int:
        model, i = self.market_event[ticker]
        return model.center(i)

    def _add(self, m: MarketState, now_ms: int, out: list[Emission]) -> bool:
        rng = self.rng
        side = YES if rng.random() < 0.5 else NO
        book, other = (m.yes, m.no) if side == YES else (m.no, m.yes)
        if len(book) >= MAX_LEVELS:
            return False
        ranges = m.ranges()
        ref = self._center(m.d.ticker)
        if side == NO:
            ref = ONE_DOLLAR - ref
        k = 1
        while k < 8 and rng.random() < 0.55:
            k += 1
        p = snap_down(ranges, ref - tick_at(ranges, ref) * k)
        if other:
            limit = ONE_DOLLAR - max(other)  # a bid at or above this would trade
            if p >= limit:
                p = snap_down(ranges, limit - 1)
        p = min(p, max_price(ranges))
        if p < min_price(ranges) or book.get(p, 0) >= MAX_LEVEL_SIZE:
            return False
        self._delta(out, m, side, p, self._size(), now_ms)
        return True

    def _cancel(self, m: MarketState, now_ms: int, out: list[Emission]) -> bool:
        rng = self.rng
        if not m.yes and not m.no:
            return False
        side = YES if (m.yes and (not m.no or len(m.yes) >= len(m.no) or rng.random() < 0.3)) else NO
        book = m.yes if side == YES else m.no
        p = rng.choice(list(book))
        size = book[p]
        amount = size if rng.random() < 0.5 else rng.randrange(1, size + 1)
        self._delta(out, m, side, p, -amount, now_ms)
        return True

    def _trade(self, m: MarketState, now_ms: int, out: list[Emission]) -> bool:
        rng = self.rng
        taker_yes = rng.random() < 0.5
        book = m.no if taker_yes else m.yes
        if not book:
            taker_yes = not taker_yes
            book = m.no if taker_yes else m.yes
            if not book:
                return False
        p = max(book)
        count = min(book[p], self._size())
        # A taker buying YES lifts the best NO bid (the YES ask); selling YES hits the YES bid.
        yes_price = ONE_DOLLAR - p if taker_yes else p
        self._delta(out, m, NO if taker_yes else YES, p, -count, now_ms, ticker=False)
        self._trade_frames(m, yes_price, count, taker_yes, now_ms, out)
        return True

    def block_trade(self, ticker: str, now_ms: int, out: list[Emission]) -> None:
        """An off-book block trade: a trade and a ticker, no book change."""
        m = self.state.markets[ticker]
        ranges = m.ranges()
        price = max(min_price(ranges), min(max_price(ranges), snap_down(ranges, self._center(ticker))))
        self._trade_frames(
            m, price, self.rng.randrange(100, 1000) * 100, self.rng.random() < 0.5, now_ms, out, True
        )

    def _trade_frames(
        self,
        m: MarketState,
        yes_price: int,
        count: int,
        taker_yes: bool,
        now_ms: int,
        out: list[Emission],
        is_block: bool = False,
    ) -> None:
        oi = m.oi + count if self.rng.random() < 0.6 else max(0, m.oi - count)
        t = TradeRec(self._trade_id(), m.d.ticker, yes_price, count, taker_yes, now_ms, oi, is_block)
        # seq=True: the December AsyncAPI numbers trade frames per sid, like the book's.
        self.emit(out, Emission(K_TRADE, CH_TRADE, m.d.ticker, P_TRADE, frames.trade_body(t), t, seq=True))
        self._ticker(out, m, now_ms)

    # ---- emission helpers -------------------------------------------------------------------
    def _size(self) -> int:
        rng = self.rng
        if rng.random() < 0.2:
            return rng.randrange(1, 50_000)  # fractional contracts exist since 2026-03
        return rng.randrange(1, 500) * 100

    def _trade_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128) ^ self._run_mask, version=4))

    def emit(self, out: list[Emission], em: Emission) -> None:
        self.state.apply(em)
        out.append(em)

    def _delta(
        self,
        out: list[Emission],
        m: MarketState,
        side: int,
        price: int,
        delta: int,
        now_ms: int,
        *,
        send: bool = True,
        ticker: bool = True,
    ) -> None:
        before = m.top() if ticker and send else None
        body, body_yp = frames.delta_bodies(m, side, price, delta, now_ms) if send else (None, None)
        em = Emission(
            K_DELTA, CH_BOOK, m.d.ticker, P_DELTA, body, (side, price, delta), seq=True, body_yp=body_yp
        )
        self.emit(out, em)
        if before is not None and m.top() != before:
            self._ticker(out, m, now_ms)

    def _ticker(self, out: list[Emission], m: MarketState, now_ms: int) -> None:
        self.emit(
            out, Emission(K_TICKER, CH_TICKER, m.d.ticker, P_TICKER, frames.ticker_body(m, now_ms), now_ms)
        )

    def clear_book(self, m: MarketState, now_ms: int, out: list[Emission]) -> None:
        """Cancel every resting order (negative deltas), then one ticker for the emptied book."""
        for side, book in ((YES, m.yes), (NO, m.no)):
            for p in sorted(book):
                self._delta(out, m, side, p, -book[p], now_ms, ticker=False)
        self._ticker(out, m, now_ms)

    # ---- views for the odds feed and tests ---------------------------------------------------
    def sports_models(self) -> list[EventModel]:
        return [md for md in self.models.values() if md.d.sport_key and md.live]
