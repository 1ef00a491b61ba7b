"""Kalshi games <-> sportsbook events, by league, date and teams, with a confidence score.

Confidence = teams x date x start time, each in [0, 1]:

- teams: each side's names (the league table's name and aliases for the code, and the
  market's ``yes_sub_title``) against the sportsbook team names - 1.0 for the same
  normalised name, 0.9 when one name's words contain the other's ("Lakers" in "Los
  Angeles Lakers"), token overlap x 0.8 otherwise. A side that fits the *other*
  sportsbook team as well as its own is ambiguous (x 0.5). Ticker order agreeing with
  the sportsbook's home/away is expected; the swapped reading costs x 0.95.
- date: the ticker's (Eastern) date is the start's date at UTC-4 or UTC-5: 1.0; a day
  off: 0.5; else 0.
- start time (MLB tickers carry one): within 90 min: 1.0; within 12 h: 0.7; else 0.

The best candidate is taken only when it reaches ``min_confidence`` and no other comes
within 0.05 of it (a doubleheader with no start time in the ticker is split by start
order, G1 first). Anything else is reported with its reason, never guessed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from .leagues import DRAW, League, normalize
from .odds import OddsEvent
from .tickers import TIE, GameTicker

SWAP_PENALTY = 0.95
AMBIGUITY_MARGIN = 0.05
_ET_OFFSETS_MIN = (-240, -300)


@dataclass
class Game:
    """One Kalshi game event as the detector knows it."""

    event_ticker: str
    series: str
    league: League | None
    #: outcome code -> market ticker
    markets: dict[str, str] = field(default_factory=dict)
    #: outcome code -> the market's yes_sub_title
    sub_titles: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MatchResult:
    event_ticker: str
    #: matched | no_league | unparsed | unknown_team | no_odds | no_candidates | low_confidence | ambiguous
    reason: str
    confidence: float = 0.0
    odds_id: str = ""
    #: market ticker -> normalised sportsbook outcome name
    outcomes: dict[str, str] = field(default_factory=dict)
    detail: str = ""

    @property
    def matched(self) -> bool:
        return self.reason == "matched"


def name_score(names: Sequence[str], target: str) -> float:
    t = normalize(target)
    tt = set(t.split())
    best = 0.0
    for name in names:
        n = normalize(name)
        if not n:
            continue
        if n == t:
            return 1.0
        nt = set(n.split())
        contained = nt <= tt or tt <= nt
        best = max(best, 0.9 if contained else 0.8 * len(nt & tt) / len(nt | tt))
    return best


def _team_names(game: Game, code: str) -> list[str]:
    out = game.league.names(code) if game.league else []
    if code in game.sub_titles:
        out.append(game.sub_titles[code])
    return out


def date_score(ticker: GameTicker, commence_ms: int) -> float:
    best = 0.0
    for off in _ET_OFFSETS_MIN:
        local = dt.datetime.fromtimestamp(commence_ms / 1000 + off * 60, dt.UTC)
        days = abs((local.date() - ticker.date).days)
        if days == 0:
            score = 1.0
            if ticker.start_min is not None:
                minutes = abs(local.hour * 60 + local.minute - ticker.start_min)
                score = 1.0 if minutes <= 90 else 0.7 if minutes <= 720 else 0.0
            best = max(best, score)
        elif days == 1:
            best = max(best, 0.5)
    return best


def _orientation(
    n1: list[str], n2: list[str], first: str, second: str
) -> tuple[float, bool, tuple[float, float, float, float]]:
    """(teams score, straight?, raw scores): team1 -> first and team2 -> second, or swapped."""
    a, b = name_score(n1, first), name_score(n2, second)
    c, d = name_score(n1, second), name_score(n2, first)
    straight = min(a, b) * (1.0 if a > c and b > d else 0.5)
    swapped = min(c, d) * SWAP_PENALTY * (1.0 if c > a and d > b else 0.5)
    return (straight, True, (a, b, c, d)) if straight >= swapped else (swapped, False, (a, b, c, d))


def match_game(
    game: Game, ticker: GameTicker | None, candidates: Sequence[OddsEvent] | None, min_confidence: float
) -> MatchResult:
    ev = game.event_ticker
    if game.league is None:
        return MatchResult(ev, "no_league", detail=f"no team table covers {game.series}")
    if ticker is None:
        return MatchResult(ev, "unparsed", detail="event ticker has no readable date and team pair")
    n1, n2 = _team_names(game, ticker.team1), _team_names(game, ticker.team2)
    if not n1 or not n2:
        missing = [c for c, n in ((ticker.team1, n1), (ticker.team2, n2)) if not n]
        return MatchResult(ev, "unknown_team", detail=f"no name for {', '.join(missing)}")
    if candidates is None:
        return MatchResult(ev, "no_odds", detail=f"no odds yet for {game.league.sport_key}")
    home_first = game.league.home_first
    scored: list[tuple[float, int, OddsEvent, bool]] = []
    for cand in candidates:
        date = date_score(ticker, cand.commence_ms)
        if date == 0.0:
            continue
        first, second = (cand.home, cand.away) if home_first else (cand.away, cand.home)
        teams, straight, _ = _orientation(n1, n2, first, second)
        scored.append((teams * date, cand.commence_ms, cand, straight))
    if not scored:
        return MatchResult(ev, "no_candidates", detail=f"no {game.league.sport_key} event on {ticker.date}")
    scored.sort(key=lambda s: (-s[0], s[1]))
    best = scored[0]
    if best[0] < min_confidence:
        return MatchResult(
            ev, "low_confidence", best[0], best[2].id, detail=f"best: {best[2].away} at {best[2].home}"
        )
    rivals = [s for s in scored[1:] if best[0] - s[0] < AMBIGUITY_MARGIN]
    if rivals:
        if ticker.game and ticker.start_min is None and len(rivals) == 1:
            # A doubleheader: the ticker's G1/G2 is the start order of the two.
            pair = sorted([best, rivals[0]], key=lambda s: s[1])
            best = pair[ticker.game - 1]
        else:
            return MatchResult(
                ev, "ambiguous", best[0], best[2].id, detail=f"{len(rivals) + 1} events score alike"
            )
    score, _, cand, straight = best
    first, second = (cand.home, cand.away) if home_first else (cand.away, cand.home)
    if not straight:
        first, second = second, first
    names = {ticker.team1: normalize(first), ticker.team2: normalize(second), TIE: normalize(DRAW)}
    outcomes = {t: names[code] for code, t in game.markets.items() if code in names}
    return MatchResult(ev, "matched", score, cand.id, outcomes, detail=f"{cand.away} at {cand.home}")
