"""Market and event lifecycle: games end, get determined and settle; markets pause and resume;
new games are listed; price structures and fees change.

Frames follow Kalshi's ``market_lifecycle_v2`` channel: ``close_date_updated``
when a game ends early, ``determined`` then ``settled``; ``deactivated`` /
``activated`` for pause and resume (resting orders are cancelled on
reactivation); ``event_lifecycle`` + ``created`` + ``metadata_updated`` for a new listing;
``price_level_structure_updated``; ``event_fee_update``. Opening at
``open_time`` and closing at ``close_time`` emit nothing, as on Kalshi.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Protocol

from services.exchange_sim import frames
from services.exchange_sim.catalog import DAY_MS, CatalogFactory, EventDef
from services.exchange_sim.emission import CH_LIFE, K_LIFE, P_EVENT, P_FEE, P_LIFE, Emission, LifeChange
from services.exchange_sim.event_model import EventModel
from services.exchange_sim.state import ExchangeState, MarketState
from shared.units import ONE_DOLLAR, format_price


class LifecycleEngine(Protocol):
    """What a lifecycle action uses of the engine (:class:`services.exchange_sim.activity.Engine`).

    Named here, so the lifecycle does not import the engine that owns it (no import cycle).
    """

    rng: random.Random
    state: ExchangeState
    factory: CatalogFactory
    models: dict[str, EventModel]
    #: tickers of the markets being quoted; an action that pauses or ends one removes it
    active: list[str]
    lifecycle_every: int

    def emit(self, out: list[Emission], em: Emission) -> None: ...
    def adopt(self, ev: EventDef) -> EventModel: ...
    def schedule(self, after_steps: int, action: str, key: str) -> None: ...
    def quote_book(self, ticker: str, now_ms: int, *, send: bool = True) -> list[Emission]: ...
    def clear_book(self, m: MarketState, now_ms: int, out: list[Emission]) -> None: ...
    def sports_models(self) -> list[EventModel]: ...


class Lifecycle:
    def __init__(self, engine: LifecycleEngine) -> None:
        self.e = engine

    def _life(
        self,
        out: list[Emission],
        key: str,
        body: bytes | Callable[[], bytes],
        change: LifeChange,
        prefix: bytes = P_LIFE,
    ) -> None:
        """Apply ``change`` to the engine state, then build the body (a callable sees the new state)."""
        em = Emission(K_LIFE, CH_LIFE, key, prefix, None, change, seq=True)
        self.e.emit(out, em)
        em.body = body() if callable(body) else body

    def act(self, now_ms: int, out: list[Emission]) -> None:
        """One lifecycle action, chosen by the engine's random stream."""
        r = self.e.rng.random()
        if r < 0.4:
            self.finish_game(now_ms, out)
        elif r < 0.6:
            self.pause_or_resume(now_ms, out)
        elif r < 0.72:
            self.refine_prices(now_ms, out)
        elif r < 0.86:
            self.fee_update(now_ms, out)
        else:
            self.extend_close(now_ms, out)

    def run_due(self, action: str, key: str, now_ms: int, out: list[Emission]) -> None:
        if action == "determine":
            self.determine(key, now_ms, out)
        elif action == "settle":
            self.settle(key, now_ms, out)
        elif action == "activate":
            self.activate(key, now_ms, out)

    # ---- games ------------------------------------------------------------------------------
    def finish_game(self, now_ms: int, out: list[Emission]) -> None:
        e = self.e
        live = [
            md for md in e.sports_models() if all(t in e.active for t in (m.ticker for m in md.d.markets))
        ]
        if not live:
            return
        model = e.rng.choice(live)
        model.live = False
        now_s = now_ms // 1000
        for md in model.d.markets:
            m = e.state.markets[md.ticker]
            e.active.remove(md.ticker)
            e.clear_book(m, now_ms, out)
            self._life(
                out,
                md.ticker,
                frames.life_body(md.ticker, "close_date_updated", close_ts=now_s),
                LifeChange(
                    "market", md.ticker, {"status": "closed", "close_ms": now_ms, "updated_ms": now_ms}
                ),
            )
        every = max(4, e.lifecycle_every)
        e.schedule(every // 4, "determine", model.d.event_ticker)
        e.schedule(every // 2, "settle", model.d.event_ticker)
        self.list_game(now_ms, out)

    def list_game(self, now_ms: int, out: list[Emission]) -> None:
        e = self.e
        ev = e.factory.new_game(now_ms)
        # The emission carries the definition: the public state lists the event when it is sent.
        self._life(
            out,
            ev.event_ticker,
            lambda: frames.event_body(e.state.events[ev.event_ticker]),
            LifeChange("new_event", ev.event_ticker, None, ev),
            P_EVENT,
        )
        e.adopt(ev)
        for md in ev.markets:
            m = e.state.markets[md.ticker]
            self._life(
                out,
                md.ticker,
                frames.created_body(m, e.state.events[ev.event_ticker]),
                LifeChange("market", md.ticker),
            )
            # The metadata follows as its own message; it changes nothing the state keeps.
            self._life(out, md.ticker, frames.metadata_body(m), LifeChange("market", md.ticker))
        for md in ev.markets:
            out.extend(e.quote_book(md.ticker, now_ms))

    def determine(self, event_ticker: str, now_ms: int, out: list[Emission]) -> None:
        e = self.e
        model = e.models[event_ticker]
        weights = [max(1, f) for f in model.fair]
        winner = e.rng.choices(range(len(weights)), weights)[0]
        for i, md in enumerate(model.d.markets):
            won = i == winner
            value = ONE_DOLLAR if won else 0
            self._life(
                out,
                md.ticker,
                frames.life_body(
                    md.ticker,
                    "determined",
                    result="yes" if won else "no",
                    determination_ts=now_ms // 1000,
                    settlement_value=format_price(value),
                ),
                LifeChange(
                    "market",
                    md.ticker,
                    {
                        "status": "determined",
                        "result": "yes" if won else "no",
                        "settlement_value": value,
                        "determination_ms": now_ms,
                        "updated_ms": now_ms,
                    },
                ),
            )

    def settle(self, event_ticker: str, now_ms: int, out: list[Emission]) -> None:
        for md in self.e.models[event_ticker].d.markets:
            self._life(
                out,
                md.ticker,
                frames.life_body(md.ticker, "settled", settled_ts=now_ms // 1000),
                LifeChange(
                    "market", md.ticker, {"status": "finalized", "settled_ms": now_ms, "updated_ms": now_ms}
                ),
            )

    # ---- pauses -----------------------------------------------------------------------------
    def pause_or_resume(self, now_ms: int, out: list[Emission]) -> None:
        e = self.e
        if len(e.active) < 2:
            return
        ticker = e.rng.choice(e.active)
        e.active.remove(ticker)
        self._life(
            out,
            ticker,
            frames.life_body(ticker, "deactivated", is_deactivated=True),
            LifeChange("market", ticker, {"status": "inactive", "updated_ms": now_ms}),
        )
        e.schedule(max(2, e.lifecycle_every // 3), "activate", ticker)

    def activate(self, ticker: str, now_ms: int, out: list[Emission]) -> None:
        e = self.e
        m = e.state.markets[ticker]
        self._life(
            out,
            ticker,
            frames.life_body(ticker, "activated", is_deactivated=False),
            LifeChange("market", ticker, {"status": "active", "updated_ms": now_ms}),
        )
        # Kalshi cancels all resting orders when a paused market reactivates.
        e.clear_book(m, now_ms, out)
        e.active.append(ticker)
        out.extend(e.quote_book(ticker, now_ms))

    # ---- metadata ---------------------------------------------------------------------------
    def refine_prices(self, now_ms: int, out: list[Emission]) -> None:
        e = self.e
        coarse = [t for t in e.active if e.state.markets[t].structure != "deci_cent"]
        if not coarse:
            return
        ticker = e.rng.choice(coarse)
        m = e.state.markets[ticker]
        # deci_cent is finer than every other structure, so all resting prices stay valid.
        self._life(
            out,
            ticker,
            lambda: frames.life_body(
                ticker,
                "price_level_structure_updated",
                price_level_structure="deci_cent",
                price_ranges=frames.price_ranges(m),
            ),
            LifeChange("market", ticker, {"structure": "deci_cent", "updated_ms": now_ms}),
        )

    def fee_update(self, now_ms: int, out: list[Emission]) -> None:
        e = self.e
        ev = e.state.events[e.rng.choice(sorted(e.models))]
        if ev.fee_type_override is None:
            fee_type, mult = "quadratic_with_maker_fees", 0.5
        else:
            fee_type, mult = None, None
        self._life(
            out,
            ev.d.event_ticker,
            frames.fee_body(ev.d.event_ticker, fee_type, mult),
            LifeChange(
                "event",
                ev.d.event_ticker,
                {"fee_type_override": fee_type, "fee_multiplier_override": mult, "updated_ms": now_ms},
            ),
            P_FEE,
        )

    def extend_close(self, now_ms: int, out: list[Emission]) -> None:
        e = self.e
        if not e.active:
            return
        ticker = e.rng.choice(e.active)
        m = e.state.markets[ticker]
        close = m.close_ms + DAY_MS
        self._life(
            out,
            ticker,
            frames.life_body(ticker, "close_date_updated", close_ts=close // 1000),
            LifeChange("market", ticker, {"close_ms": close, "updated_ms": now_ms}),
        )
