"""The sports markets the detector watches, their games, fee models, matches and fair values.

Pure state (no sockets, ``now`` passed in). Markets arrive as ``MarketMeta`` (from the
connector, the poller or the worker's own REST discovery) and pass the sports filter
here; games are grouped by event ticker; sportsbook odds arrive per sport and each
game is matched to one sportsbook event (:mod:`.matching`). A market's fair value is
the consensus of the de-vigged lines of that event's fresh books for its outcome; it
expires when its oldest book turns ``max_odds_age`` old and is then recomputed from
the books still fresh.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from shared.messages import FeeUpdate, MarketLifecycle, MarketMeta

from .devig import consensus
from .fees import FeeModel, FeeSchedule
from .leagues import League
from .matching import Game, MatchResult, match_game
from .odds import OddsEvent
from .tickers import GameTicker, outcome_code, parse_game, series_of

TRADABLE = frozenset({"active", "open"})
CLOSED_EVENTS = frozenset({"determined", "settled"})


@dataclass(slots=True)
class MarketInfo:
    ticker: str
    event_ticker: str
    series: str
    code: str
    sport: str
    fee_type: str
    fee_multiplier_ppm: int
    active: bool
    fee: FeeModel | None = None
    outcome: str | None = None  # normalised sportsbook outcome name, once matched
    fair: int | None = None  # ppm that YES wins
    fair_expires_ms: int = 0
    fair_books: tuple[str, ...] = ()
    fair_oldest_ms: int = 0
    fair_why: str = "unmatched"


@dataclass
class Settings:
    series: frozenset[str]
    devig: str
    consensus: str
    min_books: int
    max_odds_age_ms: int
    min_confidence: float


@dataclass
class SportsCatalog:
    settings: Settings
    leagues: dict[str, League]
    fees: FeeSchedule
    markets: dict[str, MarketInfo] = field(default_factory=dict)
    games: dict[str, Game] = field(default_factory=dict)
    parsed: dict[str, GameTicker | None] = field(default_factory=dict)
    matches: dict[str, MatchResult] = field(default_factory=dict)
    #: sport key -> odds event id -> event
    odds: dict[str, dict[str, OddsEvent]] = field(default_factory=dict)
    #: sport key -> fingerprint of its event list (ids, teams, start); a game matched against the
    #: same fingerprint needs no new match when only prices moved
    odds_sig: dict[str, int] = field(default_factory=dict)
    match_sig: dict[str, int] = field(default_factory=dict)
    #: sport key -> UTC date of the start -> events (a game is only compared with events
    #: starting within a day of its ticker's date)
    by_date: dict[str, dict[dt.date, list[OddsEvent]]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def count(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    # ---- markets ---------------------------------------------------------------------------
    def on_meta(self, m: MarketMeta, now_ms: int) -> str | None:
        """Admit or update a market; returns its event ticker when it is watched."""
        series = m.series_ticker or series_of(m.ticker, self.settings.series) or ""
        if series not in self.settings.series or series_of(m.ticker, self.settings.series) is None:
            self.count("rejected.discovery")
            return None
        code = outcome_code(m.ticker, m.event_ticker)
        if code is None:
            self.count("rejected.malformed_ticker")
            return None
        league = self.leagues.get(series)
        mk = self.markets.get(m.ticker)
        if mk is None:
            mk = self.markets[m.ticker] = MarketInfo(
                m.ticker,
                m.event_ticker,
                series,
                code,
                league.name if league else series,
                m.fee_type,
                m.fee_multiplier_ppm,
                m.status in TRADABLE,
            )
        else:
            mk.fee_type, mk.fee_multiplier_ppm = m.fee_type, m.fee_multiplier_ppm
            mk.active = m.status in TRADABLE
        mk.fee = self.fees.model(m.event_ticker, m.fee_type, m.fee_multiplier_ppm)
        game = self.games.get(m.event_ticker)
        if game is None:
            game = self.games[m.event_ticker] = Game(m.event_ticker, series, league)
        changed = game.markets.get(code) != m.ticker or game.sub_titles.get(code) != m.yes_sub_title
        game.markets[code] = m.ticker
        game.sub_titles[code] = m.yes_sub_title
        if changed:
            self.parsed.pop(m.event_ticker, None)
            self.rematch(game, now_ms)
        return m.event_ticker

    def on_fee(self, m: FeeUpdate) -> str | None:
        if series_of(m.event_ticker, self.settings.series) is None:
            self.count("rejected.message")
            return None
        self.fees.override(m.event_ticker, m.fee_type_override, m.fee_multiplier_ppm_override)
        game = self.games.get(m.event_ticker)
        if game is None:
            return None
        for t in game.markets.values():
            mk = self.markets[t]
            mk.fee = self.fees.model(mk.event_ticker, mk.fee_type, mk.fee_multiplier_ppm)
        return m.event_ticker

    def on_lifecycle(self, m: MarketLifecycle) -> str | None:
        mk = self.markets.get(m.ticker)
        if mk is None:
            return None
        if m.event_type in CLOSED_EVENTS:
            self.remove(m.ticker)
            return mk.event_ticker
        if m.event_type == "deactivated" or m.is_deactivated is True:
            mk.active = False
        elif m.event_type == "activated" or m.is_deactivated is False:
            mk.active = True
        return mk.event_ticker

    def remove(self, ticker: str) -> None:
        mk = self.markets.pop(ticker, None)
        if mk is None:
            return
        game = self.games.get(mk.event_ticker)
        if game is not None:
            game.markets.pop(mk.code, None)
            game.sub_titles.pop(mk.code, None)
            if not game.markets:
                del self.games[mk.event_ticker]
                self.matches.pop(mk.event_ticker, None)
                self.parsed.pop(mk.event_ticker, None)
                self.match_sig.pop(mk.event_ticker, None)

    # ---- odds, matching, fair values -------------------------------------------------------
    def on_odds(self, events: list[OddsEvent], now_ms: int) -> set[str]:
        """Store a sport's events; returns the event tickers whose fair values were recomputed."""
        sports: dict[str, dict[str, OddsEvent]] = {}
        for ev in events:
            sports.setdefault(ev.sport_key, {})[ev.id] = ev
        touched: set[str] = set()
        for sport, evs in sports.items():
            book = self.odds.setdefault(sport, {})
            book.update(evs)
            # Events the feed no longer lists have started or been pulled: drop those that began.
            for oid in [i for i, e in book.items() if i not in evs and e.commence_ms < now_ms]:
                del book[oid]
            sig = hash(frozenset((e.id, e.commence_ms, e.home, e.away) for e in book.values()))
            self.odds_sig[sport] = sig
            index: dict[dt.date, list[OddsEvent]] = {}
            for e in book.values():
                day = dt.datetime.fromtimestamp(e.commence_ms / 1000, dt.UTC).date()
                index.setdefault(day, []).append(e)
            self.by_date[sport] = index
            for game in self.games.values():
                if game.league is None or game.league.sport_key != sport:
                    continue
                if self.match_sig.get(game.event_ticker) == sig:
                    for t in game.markets.values():
                        self.refair(self.markets[t], now_ms)
                else:
                    self.rematch(game, now_ms)
                touched.add(game.event_ticker)
        return touched

    def _parsed(self, game: Game) -> GameTicker | None:
        if game.event_ticker not in self.parsed:
            table = game.league.teams if game.league else ()
            self.parsed[game.event_ticker] = parse_game(
                game.event_ticker, game.series, game.markets.keys(), table
            )
        return self.parsed[game.event_ticker]

    def _candidates(self, sport: str, ticker: GameTicker | None) -> list[OddsEvent] | None:
        """The sport's events starting within two days of the game's date (UTC vs Eastern)."""
        if sport not in self.odds:
            return None
        index = self.by_date.get(sport, {})
        if ticker is None:
            return [e for evs in index.values() for e in evs]
        return [e for d in range(-2, 3) for e in index.get(ticker.date + dt.timedelta(days=d), [])]

    def rematch(self, game: Game, now_ms: int) -> None:
        sport = game.league.sport_key if game.league else ""
        parsed = self._parsed(game)
        cands = self._candidates(sport, parsed)
        res = match_game(game, parsed, cands, self.settings.min_confidence)
        old = self.matches.get(game.event_ticker)
        if old is None or old.reason != res.reason:
            self.count(f"match.{res.reason}")
        self.matches[game.event_ticker] = res
        if cands is not None:
            self.match_sig[game.event_ticker] = self.odds_sig.get(sport, 0)
        else:
            self.match_sig.pop(game.event_ticker, None)
        for t in game.markets.values():
            mk = self.markets[t]
            mk.outcome = res.outcomes.get(t) if res.matched else None
            self.refair(mk, now_ms)

    def refair(self, mk: MarketInfo, now_ms: int) -> None:
        mk.fair, mk.fair_books, mk.fair_expires_ms = None, (), 0
        res = self.matches.get(mk.event_ticker)
        league = self.leagues.get(mk.series)
        if res is None or not res.matched or mk.outcome is None or league is None:
            mk.fair_why = "unmatched"
            return
        ev = self.odds.get(league.sport_key, {}).get(res.odds_id)
        if ev is None:
            mk.fair_why = "odds_gone"
            return
        s = self.settings
        values: list[int] = []
        books: list[str] = []
        oldest = now_ms
        stale = 0
        for line in ev.books.values():
            p = line.probs.get(mk.outcome)
            # A two-way line of a three-way game (draw no bet) prices something else.
            if p is None or len(line.probs) != league.outcomes:
                continue
            if now_ms - line.updated_ms > s.max_odds_age_ms:
                stale += 1
                continue
            values.append(p)
            books.append(line.book)
            oldest = min(oldest, line.updated_ms)
        if len(values) < s.min_books:
            mk.fair_why = "stale_odds" if stale else "few_books"
            return
        mk.fair = consensus(values, "mean" if s.consensus == "mean" else "median")
        mk.fair_books = tuple(sorted(books))
        mk.fair_oldest_ms = oldest
        mk.fair_expires_ms = oldest + s.max_odds_age_ms + 1
        mk.fair_why = "ok"

    # ---- views -----------------------------------------------------------------------------
    def unmatched(self) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        for ev, res in sorted(self.matches.items()):
            if res.matched:
                continue
            out.append(
                {
                    "event_ticker": ev,
                    "reason": res.reason,
                    "confidence": round(res.confidence, 3),
                    "best_odds_event": res.odds_id,
                    "detail": res.detail,
                    "markets": sorted(self.games[ev].markets.values()) if ev in self.games else [],
                }
            )
        return out

    def match_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for res in self.matches.values():
            out[res.reason] = out.get(res.reason, 0) + 1
        return out
