"""The simulator's market model: deterministic, consistent books, real ticker formats, lifecycle."""

from __future__ import annotations

import re

from services.exchange_sim.activity import Engine
from services.exchange_sim.catalog import PRICE_STRUCTURES
from services.exchange_sim.emission import CH_LIFE, K_DELTA, K_TRADE
from services.exchange_sim.pricing import on_grid, taker_fee
from services.exchange_sim.state import ExchangeState
from services.exchange_sim.truth import Truth
from shared.units import ONE_DOLLAR

NOW = 1_793_750_400_000  # 2026-11-04 00:00 UTC


def _run(seed: int, steps: int, lifecycle_every: int) -> tuple[Engine, list[bytes]]:
    e = Engine(seed, 40, start_ms=NOW, lifecycle_every=lifecycle_every)
    e.initial_emissions(NOW)
    bodies = [em.body for em in e.run(steps, NOW) if em.body is not None]
    return e, bodies


def test_same_seed_same_markets_and_frames() -> None:
    a, fa = _run(11, 3000, lifecycle_every=100)
    b, fb = _run(11, 3000, lifecycle_every=100)
    assert list(a.state.markets) == list(b.state.markets)
    assert [m.d.market_id for m in a.state.markets.values()] == [
        m.d.market_id for m in b.state.markets.values()
    ]
    assert fa == fb
    c, fc = _run(12, 3000, lifecycle_every=100)
    assert list(c.state.markets) != list(a.state.markets)
    assert fc != fa


TRADE_ID = re.compile(rb'"trade_id":"([0-9a-f-]{36})"')


def test_a_new_run_makes_new_trade_ids_on_the_same_market() -> None:
    """A restarted simulator (same seed, new run) replays the market but never a trade id:
    a store keyed on trade_id keeps storing its trades (issue 15)."""

    def run(n: int) -> list[bytes]:
        e = Engine(11, 40, start_ms=NOW, lifecycle_every=100, run=n)
        e.initial_emissions(NOW)
        return [em.body for em in e.run(3000, NOW) if em.body is not None]

    first, again, other = run(1), run(1), run(2)
    ids = [TRADE_ID.findall(b) for b in first]
    flat = [i for found in ids for i in found]
    assert len(flat) > 20 and len(set(flat)) == len(flat)
    assert again == first, "a given (seed, run) is deterministic"
    other_ids = {i for b in other for i in TRADE_ID.findall(b)}
    assert not other_ids & set(flat), "another run repeats no trade id"
    # ... and everything but the trade ids is the same market, frame for frame.
    assert [TRADE_ID.sub(b"", b) for b in other] == [TRADE_ID.sub(b"", b) for b in first]
    assert [TRADE_ID.sub(b"", b) for b in run(0)] == [TRADE_ID.sub(b"", b) for b in first]


def test_catalog_has_real_ticker_formats_and_filterable_categories() -> None:
    e = Engine(5, 120, start_ms=NOW)
    markets = e.state.markets
    assert len(markets) >= 120
    series = {e.state.events[m.d.event_ticker].d.series_ticker for m in markets.values()}
    assert {"KXNFLGAME", "KXNBAGAME", "KXEPLGAME", "KXMLBGAME"} <= series
    assert series & {"KXFEDDECISION", "KXPAYROLLS", "KXHIGHNY", "KXGOVSHUTLENGTH"}
    categories = {e.state.series[s].category for s in series}
    assert {"Sports", "Economics"} <= categories
    for ev in e.state.events.values():
        d = ev.d
        for m in d.markets:
            assert re.fullmatch(r"[A-Z0-9-]+", m.ticker), m.ticker
            assert m.ticker.startswith(d.event_ticker + "-")
        if d.series_ticker == "KXMLBGAME":
            assert re.fullmatch(r"KXMLBGAME-\d\d[A-Z]{3}\d\d\d{4}[A-Z]{4,8}", d.event_ticker), d.event_ticker
        elif d.sport_key:
            assert re.fullmatch(rf"{d.series_ticker}-\d\d[A-Z]{{3}}\d\d[A-Z-]{{4,9}}", d.event_ticker), (
                d.event_ticker
            )
        if d.series_ticker == "KXEPLGAME":
            assert len(d.markets) == 3 and d.markets[-1].ticker.endswith("-TIE")
        elif d.sport_key:
            assert len(d.markets) == 2
        if d.mutually_exclusive:
            assert sum(d.fair) == ONE_DOLLAR
    structures = {m.structure for m in markets.values()}
    assert {"linear_cent", "deci_cent", "tapered_deci_cent"} <= structures


def test_books_stay_uncrossed_on_grid_and_equal_a_replay() -> None:
    e = Engine(3, 30, start_ms=NOW, lifecycle_every=60)
    public = ExchangeState(e.initial_events)
    for em in e.initial_emissions(NOW):
        public.apply(em)
    for _ in range(40):
        for em in e.run(100, NOW):
            public.apply(em)
        for t, m in e.state.markets.items():
            assert public.markets[t].yes == m.yes and public.markets[t].no == m.no
            if m.yes and m.no:
                assert max(m.yes) + max(m.no) < ONE_DOLLAR, t
            ranges = PRICE_STRUCTURES[m.structure]
            assert all(on_grid(ranges, p) for p in (*m.yes, *m.no)), t
            assert all(size > 0 for size in (*m.yes.values(), *m.no.values()))
    assert public.trades_total == e.state.trades_total > 0


def test_each_step_changes_the_book_and_trades_consume_liquidity() -> None:
    e = Engine(9, 20, start_ms=NOW, lifecycle_every=0)
    e.initial_emissions(NOW)
    for _ in range(500):
        ems = e.step(NOW)
        assert any(em.kind == K_DELTA for em in ems)
        trades = [em for em in ems if em.kind == K_TRADE]
        for tr in trades:
            deltas = [em for em in ems if em.kind == K_DELTA and em.ticker == tr.ticker]
            # The taker lifted the opposite side: one negative delta of the traded size.
            assert len(deltas) == 1 and deltas[0].data[2] == -tr.data.count
            side, price, _ = deltas[0].data
            yes_price = ONE_DOLLAR - price if side == 1 else price
            assert tr.data.yes_price == yes_price


def test_lifecycle_ends_games_settles_them_and_lists_new_ones() -> None:
    e = Engine(4, 30, start_ms=NOW, lifecycle_every=20)
    e.initial_emissions(NOW)
    kinds: dict[bytes, int] = {}
    events: list[bytes] = []
    for em in e.run(6000, NOW):
        if em.channel == CH_LIFE and em.body is not None:
            kinds[em.type_prefix] = kinds.get(em.type_prefix, 0) + 1
            events.append(em.body)
    text = b"\n".join(events)
    for event_type in (
        b"created",
        b"activated",
        b"deactivated",
        b"close_date_updated",
        b"determined",
        b"settled",
    ):
        assert b'"event_type":"' + event_type + b'"' in text, event_type
    assert b'"event_type":"price_level_structure_updated"' in text
    assert any(b"event_lifecycle" in k for k in kinds) and any(b"event_fee_update" in k for k in kinds)
    statuses = {m.status for m in e.state.markets.values()}
    assert {"active", "finalized"} <= statuses
    settled = [m for m in e.state.markets.values() if m.status == "finalized"]
    for m in settled:
        assert not m.yes and not m.no  # resting orders were cancelled when the game closed
        assert m.result in ("yes", "no") and m.settlement_value in (0, ONE_DOLLAR)
    # Exactly one winner per finished game.
    by_event: dict[str, list[str]] = {}
    for m in settled:
        by_event.setdefault(m.d.event_ticker, []).append(m.result)
    assert by_event
    for event_ticker, results in by_event.items():
        assert len(results) == len(e.state.events[event_ticker].d.markets)
        assert results.count("yes") == 1


def test_planted_arbitrage_is_real_after_fees_and_edges_are_offset_from_fair() -> None:
    e = Engine(21, 80, start_ms=NOW, lifecycle_every=0, planted_arb_every=3, planted_edge_every=2)
    e.initial_emissions(NOW)
    arbs = [p for p in e.planted if p["kind"] == "arb"]
    edges = [p for p in e.planted if p["kind"] == "edge"]
    assert arbs and edges
    live = {a["event_ticker"]: a for a in Truth(e.state).complement_arbs()}
    for p in arbs:
        ev = e.state.events[p["event_ticker"]].d
        asks = [ONE_DOLLAR - max(e.state.markets[m.ticker].no) for m in ev.markets]
        fees = sum(taker_fee(a) for a in asks)
        assert sum(asks) + fees < ONE_DOLLAR, (p, asks, fees)
        assert live[p["event_ticker"]]["edge"] == ONE_DOLLAR - sum(asks) - fees
    assert set(live) == {p["event_ticker"] for p in arbs}  # no accidental arbitrage elsewhere
    for p in edges:
        model = e.models[p["event_ticker"]]
        m = e.state.markets[p["market_ticker"]]
        best_bid, best_no = max(m.yes), max(m.no)
        mid2 = best_bid + (ONE_DOLLAR - best_no)  # twice the mid
        assert abs(mid2 - 2 * (model.fair[0] + p["edge"])) <= 2 * 300
