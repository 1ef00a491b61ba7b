"""What the simulated exchange lists: series, events and markets, generated from a seed.

Definitions here are immutable; mutable market state (status, book, volume)
lives in :mod:`services.exchange_sim.state`. The same (seed, count, anchor)
always yields the same tickers, ids and times, and :class:`CatalogFactory` keeps
creating new games deterministically while the simulator runs.
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass

from services.exchange_sim.teams import LEAGUE_BY_SERIES, LEAGUES, SimLeague

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
#: Eastern time is what Kalshi's ticker dates use (standard time; close enough for a simulator).
_ET_OFFSET_MS = -5 * HOUR_MS

#: Price level structures -> bands (start, end, step) in $0.0001 units, as Kalshi publishes them.
PRICE_STRUCTURES: dict[str, tuple[tuple[int, int, int], ...]] = {
    "linear_cent": ((0, 10_000, 100),),
    "deci_cent": ((0, 10_000, 10),),
    "tapered_deci_cent": ((0, 1_000, 10), (1_000, 9_000, 100), (9_000, 10_000, 10)),
}


@dataclass(frozen=True, slots=True)
class SeriesDef:
    ticker: str
    title: str
    category: str
    tags: tuple[str, ...]
    frequency: str
    fee_type: str
    fee_multiplier: float
    source_name: str
    source_url: str
    sport_key: str = ""


@dataclass(frozen=True, slots=True)
class MarketDef:
    ticker: str
    event_ticker: str
    market_id: str
    title: str
    yes_sub_title: str
    no_sub_title: str
    rules_primary: str
    rules_secondary: str
    created_ms: int
    open_ms: int
    close_ms: int
    expected_expiration_ms: int
    settlement_timer_s: int
    can_close_early: bool
    price_level_structure: str
    strike_type: str = ""
    floor_strike: float | None = None
    cap_strike: float | None = None


@dataclass(frozen=True, slots=True)
class EventDef:
    event_ticker: str
    series_ticker: str
    title: str
    sub_title: str
    mutually_exclusive: bool
    collateral_return_type: str
    category: str
    markets: tuple[MarketDef, ...]
    #: Fair YES probability of each market at listing, in $0.0001 (sums to 10_000 when exclusive).
    fair: tuple[int, ...]
    created_ms: int
    strike_date_ms: int | None = None
    strike_period: str = ""
    #: Sports only: Odds API sport key, team names (home, away) and start time.
    sport_key: str = ""
    home: str = ""
    away: str = ""
    commence_ms: int = 0
    #: Outcome names per market (team names, "Draw" for a soccer tie) for the Odds API.
    outcomes: tuple[str, ...] = ()


def anchor_ms(start_ms: int) -> int:
    """The catalog's anchor: ``start_ms`` or, when 0, today 00:00 UTC (stable for a whole day)."""
    if start_ms:
        return start_ms
    now = int(time.time() * 1000)
    return now - now % DAY_MS


def date_code(ms: int, with_time: bool = False) -> str:
    t = time.gmtime((ms + _ET_OFFSET_MS) / 1000)
    code = f"{t.tm_year % 100:02d}{_MONTHS[t.tm_mon - 1]}{t.tm_mday:02d}"
    return code + (f"{t.tm_hour:02d}{t.tm_min:02d}" if with_time else "")


def _nice_date(ms: int) -> str:
    t = time.gmtime((ms + _ET_OFFSET_MS) / 1000)
    return f"{_MONTHS[t.tm_mon - 1].title()} {t.tm_mday}, {t.tm_year}"


def series_catalog() -> list[SeriesDef]:
    out = [
        SeriesDef(
            lg.series,
            lg.title,
            "Sports",
            ("Sports", lg.tag),
            "custom",
            "quadratic_with_maker_fees",
            1.0,
            lg.sport_title,
            f"https://www.{lg.sport_title.lower()}.com",
            lg.sport_key,
        )
        for lg in LEAGUES
    ]
    out += [
        SeriesDef(
            "KXFEDDECISION", "Fed decision", "Economics", ("Fed", "Interest rates"), "custom", "quadratic",
            1.0, "Federal Reserve", "https://www.federalreserve.gov",
        ),
        SeriesDef(
            "KXPAYROLLS", "Jobs numbers", "Economics", ("Jobs",), "monthly", "quadratic", 1.0,
            "Bureau of Labor Statistics", "https://www.bls.gov",
        ),
        SeriesDef(
            "KXHIGHNY", "Highest temperature in NYC", "Climate and Weather", ("Daily temperature",), "daily",
            "quadratic", 1.0, "National Weather Service", "https://www.weather.gov",
        ),
        SeriesDef(
            "KXGOVSHUTLENGTH", "Government shutdown length", "Politics", ("Congress",), "custom", "quadratic",
            1.0, "Office of Personnel Management", "https://www.opm.gov",
        ),
    ]  # fmt: skip
    return out


class CatalogFactory:
    """Creates events deterministically: the initial listing, then new games during the run."""

    def __init__(self, seed: int, anchor: int) -> None:
        self.rng = random.Random(f"kxfeed-sim-catalog:{seed}")
        self.anchor = anchor
        self.used: set[str] = set()
        self._n = 0

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def initial(self, n_markets: int) -> list[EventDef]:
        """Events until at least ``n_markets`` markets are listed (games, then some non-sports)."""
        events: list[EventDef] = []
        total = 0
        kinds = [lg.series for lg in LEAGUES] + ["KXFEDDECISION", "KXPAYROLLS", "KXHIGHNY", "KXGOVSHUTLENGTH"]
        weights = [3.0] * len(LEAGUES) + [1.0] * 4
        # Every league and every non-sports series once first (so filters always have something),
        # as far as the market count allows; then a weighted random mix.
        order = list(kinds)
        self.rng.shuffle(order)
        while total < max(1, n_markets):
            kind = order.pop() if order else self.rng.choices(kinds, weights)[0]
            ev = self.event(kind, created_ms=self.anchor - 3 * DAY_MS)
            if ev is None:
                continue
            events.append(ev)
            total += len(ev.markets)
        return events

    def event(self, kind: str, created_ms: int) -> EventDef | None:
        self._n += 1
        if kind in LEAGUE_BY_SERIES:
            return self._game(LEAGUE_BY_SERIES[kind], created_ms)
        return self._non_sports(kind, created_ms)

    def new_game(self, now_ms: int) -> EventDef:
        """A game listed during the run (replaces one that ended)."""
        while True:
            ev = self._game(self.rng.choice(LEAGUES), now_ms)
            if ev is not None:
                return ev

    # ---- sports -----------------------------------------------------------------------------
    def _game(self, lg: SimLeague, created_ms: int) -> EventDef | None:
        rng = self.rng
        (away_code, away), (home_code, home) = rng.sample(lg.teams, 2)
        base = max(created_ms, self.anchor)
        day = base - base % DAY_MS + rng.randrange(0, 6) * DAY_MS
        commence = day + (rng.randrange(17, 27) * HOUR_MS) + rng.choice((0, 30)) * 60_000 - _ET_OFFSET_MS
        pair = f"{home_code}{away_code}" if lg.soccer else f"{away_code}{home_code}"
        event_ticker = f"{lg.series}-{date_code(commence, lg.with_time)}{pair}"
        if event_ticker in self.used:
            return None
        self.used.add(event_ticker)
        title = f"{home} vs {away}" if lg.soccer else f"{away} at {home}"
        outcomes: list[tuple[str, str]] = [(away_code, away), (home_code, home)]
        # Home advantage; a soccer draw takes a share of its own.
        p_home = rng.randrange(3_500, 7_000, 10)
        if lg.soccer:
            p_tie = rng.randrange(2_000, 3_000, 10)
            p_home = p_home * (10_000 - p_tie) // 10_000
            fair = [10_000 - p_tie - p_home, p_home, p_tie]
            outcomes = [(home_code, home), (away_code, away), ("TIE", "Draw")]
            fair = [fair[1], fair[0], fair[2]]
        else:
            fair = [10_000 - p_home, p_home]
        structure = "tapered_deci_cent" if self._n % 7 == 0 else "linear_cent"
        markets = []
        for code, name in outcomes:
            yes = "Tie" if code == "TIE" else name
            rules = (
                f"If {'the game ends in a tie' if code == 'TIE' else name + ' wins'} the {title} game "
                f"originally scheduled for {_nice_date(commence)}, then the market resolves to Yes."
            )
            markets.append(
                MarketDef(
                    ticker=f"{event_ticker}-{code}",
                    event_ticker=event_ticker,
                    market_id=self._uuid(),
                    title=f"{title} Winner?",
                    yes_sub_title=yes,
                    no_sub_title=yes,
                    rules_primary=rules,
                    rules_secondary="The following market refers to the game's official result.",
                    created_ms=created_ms,
                    open_ms=created_ms,
                    close_ms=commence + 14 * DAY_MS,
                    expected_expiration_ms=commence + 3 * HOUR_MS,
                    settlement_timer_s=60,
                    can_close_early=True,
                    price_level_structure=structure,
                )
            )
        return EventDef(
            event_ticker=event_ticker,
            series_ticker=lg.series,
            title=title,
            sub_title=f"{away_code if not lg.soccer else home_code} vs "
            f"{home_code if not lg.soccer else away_code} ({_nice_date(commence)})",
            mutually_exclusive=True,
            collateral_return_type="MECNET",
            category="Sports",
            markets=tuple(markets),
            fair=tuple(fair),
            created_ms=created_ms,
            strike_date_ms=commence,
            sport_key=lg.sport_key,
            home=home,
            away=away,
            commence_ms=commence,
            outcomes=tuple(name for _, name in outcomes),
        )

    # ---- non-sports -------------------------------------------------------------------------
    def _non_sports(self, kind: str, created_ms: int) -> EventDef | None:
        rng = self.rng
        offset = rng.randrange(2, 40) * DAY_MS
        when = self.anchor + offset + 18 * HOUR_MS
        exclusive = False
        strike_type = "greater"
        if kind == "KXFEDDECISION":
            event_ticker = f"{kind}-{date_code(when)[:5]}"
            legs = [
                ("H0", "Hold", 0.0),
                ("C25", "Cut 25bps", 25.0),
                ("C50", "Cut >25bps", 50.0),
                ("H25", "Hike", 25.0),
            ]
            title, structure, exclusive, strike_type = "Fed decision", "deci_cent", True, "custom"
            weights = [rng.randrange(1, 100) for _ in legs]
            fair = _split(10_000, weights)
        elif kind == "KXPAYROLLS":
            event_ticker = f"{kind}-{date_code(when)[:5]}"
            legs = [(f"T{k}", f"Above {k},000", float(k * 1000)) for k in (0, 50, 100, 150, 200)]
            title, structure = "Jobs added", "deci_cent"
            fair = _ladder(rng, len(legs))
        elif kind == "KXHIGHNY":
            event_ticker = f"{kind}-{date_code(when)}"
            low = rng.randrange(30, 60)
            legs = [(f"T{t}", f"{t}° or above", float(t)) for t in range(low, low + 12, 3)]
            title, structure = "Highest temperature in NYC", "tapered_deci_cent"
            fair = _ladder(rng, len(legs))
        else:
            event_ticker = f"{kind}-{date_code(when)[:5]}"
            legs = [(f"T{d}", f"More than {d} days", float(d)) for d in (5, 10, 20, 30)]
            title, structure = "Government shutdown length", "linear_cent"
            fair = _ladder(rng, len(legs))
        if event_ticker in self.used:
            return None
        self.used.add(event_ticker)
        markets = tuple(
            MarketDef(
                ticker=f"{event_ticker}-{code}",
                event_ticker=event_ticker,
                market_id=self._uuid(),
                title=f"{title}: {label}?",
                yes_sub_title=label,
                no_sub_title=label,
                rules_primary=f"If the outcome is {label.lower()} as of {_nice_date(when)}, "
                "then the market resolves to Yes.",
                rules_secondary="",
                created_ms=created_ms,
                open_ms=created_ms,
                close_ms=when,
                expected_expiration_ms=when + HOUR_MS,
                settlement_timer_s=300,
                can_close_early=False,
                price_level_structure=structure,
                strike_type=strike_type,
                floor_strike=None if strike_type == "custom" else strike,
            )
            for code, label, strike in legs
        )
        return EventDef(
            event_ticker=event_ticker,
            series_ticker=kind,
            title=title,
            sub_title=_nice_date(when),
            mutually_exclusive=exclusive,
            collateral_return_type="MECNET" if exclusive else "",
            category=next(s.category for s in series_catalog() if s.ticker == kind),
            markets=markets,
            fair=tuple(fair),
            created_ms=created_ms,
            strike_date_ms=when,
        )


def _split(total: int, weights: list[int]) -> list[int]:
    """Integer shares of ``total`` proportional to ``weights``, each on the cent grid, summing to total."""
    s = sum(weights)
    shares = [max(100, total * w // s // 100 * 100) for w in weights]
    shares[0] += total - sum(shares)
    return shares


def _ladder(rng: random.Random, n: int) -> list[int]:
    """Decreasing YES probabilities for 'X or above' strike ladders."""
    out, p = [], rng.randrange(8_000, 9_500, 10)
    for _ in range(n):
        out.append(p)
        p = max(200, p - rng.randrange(1_000, 3_000, 10))
    return out
