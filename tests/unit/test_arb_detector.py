"""The detector core: fee-true edges sized by depth, freshness, limits, complements, the breaker.

Expected numbers are worked out by hand in the comments (fees per Kalshi's rounding).
Game: KXNBAGAME-26FEB04MEMSAC (Memphis at Sacramento); both books quote -150 / +150, no
vig, so the fair value is exactly 0.60 for Sacramento and 0.40 for Memphis.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from services.arb.detector import Candidate, Detector
from services.arb.leagues import load_leagues
from services.arb.odds import iso_ms, parse_events
from shared.config import ArbConfig
from shared.messages import BookState, Depth, FeeUpdate, MarketLifecycle, MarketMeta, TopOfBook
from shared.units import ONE_DOLLAR
from tests.support.messages import game_meta
from tests.support.odds import sac_mem_event

EVENT = "KXNBAGAME-26FEB04MEMSAC"
SAC, MEM = f"{EVENT}-SAC", f"{EVENT}-MEM"
T0 = iso_ms("2026-02-04T20:00:00Z")
LEAGUES = load_leagues()
BIG = 10**9


def config(**kw: Any) -> ArbConfig:
    base: dict[str, Any] = {
        "min_edge": 100,
        "min_books": 2,
        "max_odds_age_s": 180.0,
        "bankroll_usd": BIG,
        "max_market_exposure_usd": BIG,
        "max_sport_exposure_usd": BIG,
        "max_daily_exposure_usd": BIG,
        "max_signals_per_minute": 1000,
    }
    base.update(kw)
    return msgspec.convert(base, ArbConfig)


def meta(ticker: str, name: str, *, status: str = "active", series: str = "KXNBAGAME") -> MarketMeta:
    return game_meta(
        ticker.rpartition("-")[0],
        ticker,
        name,
        "Memphis at Sacramento Winner?",
        status=status,
        series_ticker=series,
    )


def tob(
    ticker: str, yes_bid: tuple[int, int] | None, no_bid: tuple[int, int] | None, valid: bool = True
) -> TopOfBook:
    yb, ys = yes_bid or (None, 0)
    nb, ns = no_bid or (None, 0)
    return TopOfBook(
        ticker=ticker,
        xseq=1,
        valid=valid,
        yes_bid=yb,
        yes_bid_size=ys,
        yes_ask=ONE_DOLLAR - nb if nb else None,
        yes_ask_size=ns,
        no_bid=nb,
        no_ask=ONE_DOLLAR - yb if yb else None,
        mid_x2=None,
        spread=None,
        ts_recv=123,
    )


def depth(ticker: str, yes: list[tuple[int, int]], no: list[tuple[int, int]]) -> Depth:
    return Depth(ticker=ticker, xseq=1, valid=True, yes=yes, no=no)


def odds_json(updated_ms: int, sac: int = -150, mem: int = 150) -> bytes:
    return json.dumps([sac_mem_event("ev1", updated_ms, sac, mem)]).encode()


# SAC: YES asks 0.52 x 10, 0.55 x 20, 0.58 x 30, 0.59 x 5 (NO bids 0.48, 0.45, 0.42, 0.41);
# YES bids 0.50 x 10 (NO ask 0.50: NO is worth 0.40, no edge).
SAC_NO_BIDS = [(4800, 1000), (4500, 2000), (4200, 3000), (4100, 500)]
SAC_YES_BIDS = [(5000, 1000)]
# MEM: YES ask 0.50 (fair 0.40), YES bid 0.38 (NO ask 0.62 for a 0.60 NO); no complement
# either: YES asks 0.52 + 0.50 and NO asks 0.50 + 0.62 are both over $1.
MEM_NO_BIDS = [(5000, 1000)]
MEM_YES_BIDS = [(3800, 1000)]


def loaded(
    cfg: ArbConfig | None = None, *, odds_at: int = T0, now: int = T0
) -> tuple[Detector, list[Candidate]]:
    det = Detector(cfg or config(), LEAGUES)
    out = det.handle([meta(SAC, "Sacramento Kings"), meta(MEM, "Memphis Grizzlies")], now, 0)
    out += det.on_odds(parse_events(odds_json(odds_at), "multiplicative"), now, 0)
    out += det.handle(
        [
            tob(MEM, MEM_YES_BIDS[0], MEM_NO_BIDS[0]),
            depth(MEM, MEM_YES_BIDS, MEM_NO_BIDS),
            tob(SAC, SAC_YES_BIDS[0], SAC_NO_BIDS[0]),
            depth(SAC, SAC_YES_BIDS, SAC_NO_BIDS),
        ],
        now,
        7,
    )
    return det, out


def test_fair_value_from_the_books() -> None:
    det, _ = loaded()
    assert det.catalog.matches[EVENT].matched
    assert det.catalog.markets[SAC].fair == 600_000
    assert det.catalog.markets[MEM].fair == 400_000
    assert det.catalog.markets[SAC].fair_books == ("draftkings", "fanduel")


def test_edge_at_the_ask_after_fees_sized_by_walking_depth() -> None:
    _, out = loaded()
    (sig,) = out
    # Per-contract edge: 0.52 -> 0.08 - 0.0175 = 0.0625; 0.55 -> 0.05 - 0.0173 = 0.0327;
    # 0.58 -> 0.02 - 0.0171 = 0.0029 < $0.01: the walk stops. 30 contracts.
    assert (sig.strategy, sig.ticker, sig.side, sig.price, sig.size) == ("sportsbook", SAC, "yes", 5500, 3000)
    assert sig.fair_ppm == 600_000
    assert sig.detail["fills"] == [(5200, 1000), (5500, 2000)]
    # Cost $5.20 + $11.00. Fees: 0.07 x 10 x .52 x .48 = .17472 -> .1748, balance -5.3748 floored to
    # -5.38 (+.0052); 0.07 x 20 x .55 x .45 = .3465, -11.3465 -> -11.35 (+.0035): $0.53.
    assert sig.detail["cost"] == 16_200_000
    assert sig.detail["fees_total"] == 530_000
    # Worth 30 x 0.60 = $18.00: profit $1.27, $0.042333 a contract; fees $0.017667 a contract.
    assert sig.detail["profit"] == 1_270_000
    assert sig.edge == 42_333
    assert sig.fees == 17_667
    assert sig.detail["limited_by"] == "depth"
    assert sig.detail["books"] == ["draftkings", "fanduel"]
    assert sig.t_in_ns == 7


def test_fair_markets_produce_no_signal() -> None:
    det, _ = loaded()
    # Quote SAC around its fair value: YES ask 0.61, YES bid 0.59 (NO ask 0.41 for a 0.40 NO).
    out = det.handle(
        [tob(SAC, (5900, 1000), (3900, 1000)), depth(SAC, [(5900, 1000)], [(3900, 1000)])], T0, 0
    )
    assert out == []
    assert not det.last


def test_the_same_opportunity_is_signalled_once_and_again_when_it_changes() -> None:
    det, _ = loaded()
    assert det.handle([tob(SAC, SAC_YES_BIDS[0], SAC_NO_BIDS[0])], T0 + 10, 0) == []
    more = [(4800, 4000), *SAC_NO_BIDS[1:]]
    (sig,) = det.handle([tob(SAC, SAC_YES_BIDS[0], more[0]), depth(SAC, SAC_YES_BIDS, more)], T0 + 20, 0)
    assert sig.size == 6000
    # Gone, then back: signalled again.
    assert (
        det.handle([tob(SAC, SAC_YES_BIDS[0], (3900, 1000)), depth(SAC, [], [(3900, 1000)])], T0 + 30, 0)
        == []
    )
    back = det.handle([tob(SAC, SAC_YES_BIDS[0], more[0]), depth(SAC, SAC_YES_BIDS, more)], T0 + 40, 0)
    assert [s.size for s in back] == [6000]


def test_stale_odds_produce_no_signal() -> None:
    det, out = loaded(odds_at=T0 - 181_000)
    assert out == []
    assert det.counts["skip.stale_odds"] >= 1
    # Fresh at first, then the books age out: the fair value expires, nothing more is sent.
    det, out = loaded()
    assert len(out) == 1
    later = T0 + 181_000
    assert det.tick(later, 0) == []
    assert det.catalog.markets[SAC].fair is None
    more = [(4800, 4000), *SAC_NO_BIDS[1:]]
    assert det.handle([tob(SAC, SAC_YES_BIDS[0], more[0]), depth(SAC, SAC_YES_BIDS, more)], later, 0) == []


def test_an_invalid_book_produces_no_signal() -> None:
    det = Detector(config(), LEAGUES)
    det.handle([meta(SAC, "Sacramento Kings"), meta(MEM, "Memphis Grizzlies")], T0, 0)
    det.on_odds(parse_events(odds_json(T0), "multiplicative"), T0, 0)
    assert det.handle([tob(SAC, None, None, valid=False)], T0, 0) == []
    assert det.handle([depth(SAC, SAC_YES_BIDS, SAC_NO_BIDS)], T0, 0) == [], "depth alone is not a top"
    (sig,) = det.handle([tob(SAC, SAC_YES_BIDS[0], SAC_NO_BIDS[0])], T0, 0)
    assert sig.side == "yes"
    # INVALID from bookstate: the book and its depth are forgotten; nothing until a new top.
    assert det.handle([BookState(ticker=SAC, valid=False, reason="gap")], T0, 0) == []
    assert det.handle([BookState(ticker=SAC, valid=True)], T0, 0) == []
    assert det.counts["skip.book_not_fresh"] >= 2


def test_a_book_not_heard_of_for_max_book_age_is_not_fresh() -> None:
    det, _ = loaded(config(max_book_age_s=60.0))
    det.handle([tob(SAC, (5900, 1000), (3900, 1000))], T0, 0)
    later = T0 + 61_000
    det.on_odds(parse_events(odds_json(later, sac=-200, mem=200), "multiplicative"), later, 0)
    assert det.catalog.markets[SAC].fair == 666_667
    assert det.catalog.markets[SAC].fair is not None
    assert det.evaluate_all(later, 0) == []
    assert det.counts["skip.book_not_fresh"] >= 1


def test_kelly_caps_the_size() -> None:
    _, out = loaded(config(bankroll_usd=300, kelly_fraction_ppm=250_000))
    (sig,) = out
    # Unit cost (16.20 + 0.53) / 30 = $0.557666; f* = (0.6 - c) / (1 - c) = 0.095705;
    # stake = 300 x 0.25 x f* = $7.177945 -> 12.87 contracts.
    c = 16_730_000 * 100 // 3000
    stake = 300 * 10**6 * 250_000 * (600_000 - c) // (10**6 * (10**6 - c))
    assert sig.size == stake * 100 // c == 1287
    assert sig.detail["limited_by"] == "kelly"
    assert sig.detail["fills"] == [(5200, 1000), (5500, 287)]


def test_market_exposure_limit_caps_the_size() -> None:
    from services.arb.fees import FeeModel
    from services.arb.sizing import charge, take

    det, out = loaded(config(max_market_exposure_usd=10))
    (sig,) = out
    fee = FeeModel("quadratic_with_maker_fees", 1_000_000)
    walked = [(5200, 1000), (5500, 2000)]
    assert sum(charge(take(walked, sig.size), fee)) <= 10_000_000
    assert sum(charge(take(walked, sig.size + 1), fee)) > 10_000_000
    assert sig.detail["limited_by"] == "exposure_market"
    # The room is used: a new opportunity on the same market has nothing left to take.
    more = [(4800, 4000), *SAC_NO_BIDS[1:]]
    assert det.handle([tob(SAC, SAC_YES_BIDS[0], more[0]), depth(SAC, SAC_YES_BIDS, more)], T0, 0) == []
    assert det.counts["blocked.exposure_market"] == 1


def test_event_fee_override_changes_the_edge() -> None:
    det, _ = loaded()
    (sig,) = det.handle(
        [FeeUpdate(event_ticker=EVENT, fee_type_override=None, fee_multiplier_ppm_override=0)], T0, 0
    )
    # Fee-free, 0.58 (edge 0.02) and 0.59 (edge exactly 0.01) are worth taking too.
    assert sig.size == 6500 and sig.fees == 0
    det.handle(
        [FeeUpdate(event_ticker=EVENT, fee_type_override="flat", fee_multiplier_ppm_override=None)], T0, 0
    )
    assert det.catalog.markets[SAC].fee is None, "flat: no model, no signal"


def test_complement_arbitrage_across_an_events_outcomes() -> None:
    det = Detector(config(odds_source="none"), LEAGUES)
    det.handle([meta(SAC, "Sacramento Kings"), meta(MEM, "Memphis Grizzlies")], T0, 0)
    out = det.handle(
        [
            tob(SAC, (5000, 1000), (4500, 2000)),
            depth(SAC, [(5000, 1000)], [(4500, 2000), (4200, 1000)]),
            tob(MEM, (3500, 1000), (6000, 1500)),
            depth(MEM, [(3500, 1000)], [(6000, 1500), (5500, 1000)]),
        ],
        T0,
        0,
    )
    (sig,) = out
    # YES asks 0.55 (SAC) + 0.40 (MEM) = 0.95 with 0.0173 + 0.0168 fees: locked. 15 bundles, then
    # SAC 0.55 + MEM 0.45 = $1.00: no more.
    assert (sig.strategy, sig.ticker, sig.side, sig.size) == ("complement", EVENT, "yes", 1500)
    assert sig.legs == [MEM, SAC]
    legs = {leg["ticker"]: leg for leg in sig.detail["legs"]}
    assert legs[SAC]["fills"] == [(5500, 1500)] and legs[MEM]["fills"] == [(4000, 1500)]
    # Cost $14.25; fees: SAC .259875 -> .2599, -8.5099 -> -8.51: $0.26; MEM .252, -6.252 -> -6.26: $0.26.
    assert sig.detail["cost"] == 14_250_000
    assert sig.detail["fees_total"] == 520_000
    assert sig.detail["profit"] == 230_000
    assert sig.edge == 15_333
    assert sig.price == 9500 and sig.fair_ppm == 1_000_000


def test_complement_on_the_no_side() -> None:
    det = Detector(config(), LEAGUES)
    det.handle([meta(SAC, "Sacramento Kings"), meta(MEM, "Memphis Grizzlies")], T0, 0)
    # YES bids 0.62 and 0.45: NO asks 0.38 + 0.55 = 0.93 for a $1 payoff (one of two NOs wins).
    out = det.handle([tob(SAC, (6200, 1000), (3000, 100)), tob(MEM, (4500, 800), (5000, 100))], T0, 0)
    (sig,) = out
    assert (sig.strategy, sig.side, sig.size, sig.price) == ("complement", "no", 800, 9300)


def test_the_circuit_breaker_stops_a_flood() -> None:
    det, out = loaded(config(max_signals_per_minute=3, breaker_cooldown_s=30.0))
    assert len(out) == 1
    sent = 1
    now = T0
    for i in range(20):  # a new opportunity every 100 ms
        now += 100
        size = 1100 + 100 * i
        bids = [(4800, size), *SAC_NO_BIDS[1:]]
        sent += len(det.handle([tob(SAC, SAC_YES_BIDS[0], bids[0]), depth(SAC, SAC_YES_BIDS, bids)], now, 0))
    assert sent == 3
    assert det.ledger.trips == 1
    assert det.counts["blocked.breaker"] == 18
    assert det.ledger.breaker_open(now)
    # After the cool-down the breaker closes and the opportunity on offer is signalled.
    now = T0 + 31_000
    assert len(det.on_odds(parse_events(odds_json(now), "multiplicative"), now, 0)) == 1
    assert not det.ledger.breaker_open(now)
    assert det.evaluate_all(now, 0) == [], "and only once"


def test_sports_filter_rejects_and_counts() -> None:
    det = Detector(config(series=["KXNBAGAME"]), LEAGUES)
    fed = "KXFEDDECISION-26JAN-H0"
    det.handle([meta(fed, "Hold", series="KXFEDDECISION"), tob(fed, (100, 1), (100, 1))], T0, 0)
    det.handle([meta("KXNFLGAME-26JAN04BALPIT-PIT", "Pittsburgh", series="KXNFLGAME")], T0, 0)
    assert det.counts["rejected.discovery"] == 2
    assert det.counts["rejected.message"] == 1
    assert fed not in det.books and not det.catalog.markets


def test_settled_markets_are_forgotten_and_paused_ones_skipped() -> None:
    det, _ = loaded()
    det.handle([MarketLifecycle(ticker=SAC, event_type="deactivated")], T0, 0)
    more = [(4800, 4000), *SAC_NO_BIDS[1:]]
    assert det.handle([tob(SAC, SAC_YES_BIDS[0], more[0]), depth(SAC, SAC_YES_BIDS, more)], T0, 0) == []
    assert det.counts["skip.inactive"] >= 1
    det.handle([MarketLifecycle(ticker=SAC, event_type="settled")], T0, 0)
    assert SAC not in det.catalog.markets and SAC not in det.books


def test_unmatched_games_are_listed_not_guessed() -> None:
    det = Detector(config(), LEAGUES)
    det.handle([meta(SAC, "Sacramento Kings"), meta(MEM, "Memphis Grizzlies")], T0, 0)
    assert det.catalog.unmatched()[0]["reason"] == "no_odds"
    # The sportsbook lists the game a week later only: no candidate that day.
    body = odds_json(T0).replace(b"2026-02-05T00:10:00Z", b"2026-02-12T00:10:00Z")
    det.on_odds(parse_events(body, "multiplicative"), T0, 0)
    (row,) = det.catalog.unmatched()
    assert row["reason"] == "no_candidates" and row["markets"] == [MEM, SAC]
    assert det.catalog.markets[SAC].fair is None


def test_depth_newer_than_the_top_is_the_picture_used() -> None:
    from services.arb.books import BookView

    bk = BookView()
    bk.apply_tob(tob(SAC, (5000, 1000), (4000, 500)), T0, 1)
    bk.apply_depth(depth(SAC, [(5000, 1000)], [(4000, 500), (3900, 700)]), T0, 2)
    # Depth after the top: its own top counts (a coalesced tob may lag it).
    assert bk.best_ask("yes") == (6000, 500)
    bk.apply_depth(depth(SAC, [(5100, 200)], [(4100, 300), (4000, 500)]), T0, 3)
    assert bk.best_ask("yes") == (5900, 300) and bk.best_ask("no") == (4900, 200)
    assert bk.asks("yes") == [(5900, 300), (6000, 500)]
    # A newer top wins at the top; depth fills in only behind it.
    bk.apply_tob(tob(SAC, (5100, 200), (4200, 100)), T0, 4)
    assert bk.asks("yes") == [(5800, 100), (5900, 300), (6000, 500)]
    assert bk.depth_lag() == 1
