"""The universe's pure parts: which calls discovery plans, and MarketMeta with fee overrides."""

from __future__ import annotations

from typing import TypeVar

import msgspec

from services.poller.universe import (
    GAME_WINNER_SERIES,
    PER_SERIES_LIMIT,
    Universe,
    event_facts,
    poller_filter,
)
from shared.config import PollerConfig
from shared.kalshi.discovery import EventInfo
from shared.kalshi.rest import RestClient
from shared.kalshi.rest_models import Event, Market, Series
from shared.messages import FeeUpdate

T = TypeVar("T")
NO_SERVER = "http://127.0.0.1:9/trade-api/v2"


def decode(obj: object, typ: type[T]) -> T:
    """As Kalshi's JSON would arrive (raw JSON numbers stay raw)."""
    return msgspec.json.decode(msgspec.json.encode(obj), type=typ)


def universe(*cfgs: PollerConfig) -> Universe:
    u = Universe(RestClient(NO_SERVER), [poller_filter(c) for c in cfgs])
    u.series = {
        "KXNBAGAME": decode(
            {"ticker": "KXNBAGAME", "category": "Sports", "fee_type": "quadratic", "fee_multiplier": 1},
            Series,
        ),
        "KXFEDDECISION": decode(
            {
                "ticker": "KXFEDDECISION",
                "category": "Economics",
                "fee_type": "quadratic",
                "fee_multiplier": 0.5,
            },
            Series,
        ),
    }
    return u


def test_plans_per_series_walks_or_one_sweep() -> None:
    assert universe(PollerConfig())._plan() == (set(), True, set())
    assert universe(PollerConfig(series=["KXNBAGAME"], tickers=["T-1"]))._plan() == (
        {"KXNBAGAME"},
        False,
        {"T-1"},
    )
    assert universe(PollerConfig(categories=["economics"]))._plan() == ({"KXFEDDECISION"}, False, set())
    assert universe(PollerConfig(sports_only=True))._plan() == ({"KXNBAGAME"}, False, set())
    series, sweep, _ = universe(PollerConfig(game_winners=True))._plan()
    assert series == set(GAME_WINNER_SERIES) and sweep == (len(GAME_WINNER_SERIES) > PER_SERIES_LIMIT)
    many = PollerConfig(series=[f"S{i}" for i in range(PER_SERIES_LIMIT + 1)])
    assert universe(many)._plan()[1] is True
    # The connector's filter (all open) alongside a narrow poller filter: one sweep covers both.
    assert universe(PollerConfig(series=["KXNBAGAME"]), PollerConfig())._plan()[1] is True


def test_meta_takes_event_fee_overrides_over_the_series() -> None:
    u = universe(PollerConfig())
    ev = decode(
        {"event_ticker": "KXFEDDECISION-26DEC", "series_ticker": "KXFEDDECISION", "title": "Fed in December",
         "fee_type_override": "quadratic_with_maker_fees", "fee_multiplier_override": 0.25},
        Event,
    )  # fmt: skip
    u.events[ev.event_ticker] = event_facts(ev)
    m = decode(
        {"ticker": "KXFEDDECISION-26DEC-H0", "event_ticker": ev.event_ticker, "status": "active",
         "yes_sub_title": "Hold", "close_time": "2026-12-10T19:00:00Z",
         "price_ranges": [{"start": "0.0000", "end": "1.0000", "step": "0.0100"}]},
        Market,
    )  # fmt: skip
    u.markets[m.ticker] = m
    meta = u.meta(m, 5)
    assert (meta.series_ticker, meta.category, meta.title) == (
        "KXFEDDECISION",
        "Economics",
        "Fed in December",
    )
    assert (meta.fee_type, meta.fee_multiplier_ppm) == ("quadratic_with_maker_fees", 250_000)
    assert meta.close_ms == 1_796_929_200_000 and meta.price_ranges[0].step == 100
    assert u.apply_fee_update(
        FeeUpdate(event_ticker=ev.event_ticker, fee_type_override=None, fee_multiplier_ppm_override=None)
    ) == [m.ticker]
    assert (u.meta(m, 6).fee_type, u.meta(m, 6).fee_multiplier_ppm) == ("quadratic", 500_000)
    assert (
        u.apply_fee_update(
            FeeUpdate(event_ticker="OTHER", fee_type_override="flat", fee_multiplier_ppm_override=1)
        )
        == []
    )


def test_wanted_needs_a_known_event_and_a_live_status() -> None:
    u = universe(PollerConfig(series=["KXNBAGAME"]))
    u.events["E"] = EventInfo("KXNBAGAME", "", "Game")
    live = decode({"ticker": "E-LAL", "event_ticker": "E", "status": "active"}, Market)
    done = decode({"ticker": "E-BOS", "event_ticker": "E", "status": "finalized"}, Market)
    stray = decode({"ticker": "X-1", "event_ticker": "X", "status": "active"}, Market)
    assert [u._wanted(m) for m in (live, done, stray)] == [True, False, False]
