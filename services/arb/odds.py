"""Sportsbook odds -> per-book fair probabilities.

The HTTP and file sources hand this module The Odds API v4 JSON (:func:`parse_events`): a
list of events (or one event) as ``GET /v4/sports/{sport}/odds`` returns them::

    {"id": "...", "sport_key": "basketball_nba", "commence_time": "2026-02-04T00:10:00Z",
     "home_team": "Sacramento Kings", "away_team": "Memphis Grizzlies",
     "bookmakers": [{"key": "fanduel", "title": "FanDuel", "last_update": "2026-02-03T23:01:12Z",
                     "markets": [{"key": "h2h", "last_update": "...",
                                  "outcomes": [{"name": "Sacramento Kings", "price": -150}, ...]}]}]}

Prices are American (any ``|price| >= 100`` with a negative, or all integers >= 100)
or decimal. Only the ``h2h`` market is read. The bus source hands it ``Odds`` messages
(:func:`parse_messages`: the same event, American odds as integers, times in ms). Each
bookmaker's line is de-vigged on arrival; the consensus across books is taken later, when ages are known.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import msgspec

from shared.messages import Odds

from .devig import Method, OddsError, devig, implied_american, implied_decimal
from .leagues import normalize


class Outcome(msgspec.Struct, frozen=True):
    name: str
    price: float


class OddsApiMarket(msgspec.Struct, frozen=True):
    key: str
    outcomes: list[Outcome] = []
    last_update: str | None = None


class Bookmaker(msgspec.Struct, frozen=True):
    key: str
    last_update: str | None = None
    title: str = ""
    markets: list[OddsApiMarket] = []


class OddsApiEvent(msgspec.Struct, frozen=True):
    id: str
    sport_key: str
    commence_time: str
    home_team: str
    away_team: str
    bookmakers: list[Bookmaker] = []
    sport_title: str = ""


_EVENTS = msgspec.json.Decoder(list[OddsApiEvent])
_EVENT = msgspec.json.Decoder(OddsApiEvent)
_CONVERT_ERRORS = (msgspec.ValidationError, msgspec.DecodeError)


@dataclass(frozen=True, slots=True)
class BookLine:
    """One bookmaker's de-vigged h2h line: normalised outcome name -> ppm."""

    book: str
    updated_ms: int
    probs: dict[str, int]


@dataclass
class OddsEvent:
    id: str
    sport_key: str
    commence_ms: int
    home: str
    away: str
    books: dict[str, BookLine] = field(default_factory=dict)

    @property
    def outcome_names(self) -> list[str]:
        return [self.home, self.away]


@dataclass
class ParseResult:
    events: list[OddsEvent] = field(default_factory=list)
    #: reason -> count of books or events left out
    rejected: dict[str, int] = field(default_factory=dict)

    def reject(self, reason: str, n: int = 1) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + n


def iso_ms(text: str) -> int:
    """RFC 3339 -> Unix ms (``Z`` or an offset; naive means UTC)."""
    t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(t.timestamp() * 1000)


def _implied(prices: list[float]) -> list[Fraction]:
    american = any(p < 0 for p in prices) or all(p >= 100 and float(p).is_integer() for p in prices)
    if american:
        if not all(float(p).is_integer() for p in prices):
            raise OddsError("American odds must be whole numbers")
        return [implied_american(int(p)) for p in prices]
    # repr() gives the shortest decimal that round-trips: the decimal the JSON said.
    return [implied_decimal(Fraction(repr(float(p)))) for p in prices]


def _line(ev: OddsApiEvent, bm: Bookmaker, method: Method, res: ParseResult) -> BookLine | None:
    market = next((m for m in bm.markets if m.key == "h2h"), None)
    if market is None:
        res.reject("no_h2h")
        return None
    stamp = market.last_update or bm.last_update
    if not stamp:
        res.reject("no_last_update")
        return None
    try:
        updated = iso_ms(stamp)
    except ValueError:
        res.reject("bad_price")
        return None
    prices = [o.price for o in market.outcomes]
    names = [o.name for o in market.outcomes]
    return _book_line(
        bm.key, updated, names, lambda: _implied(prices), (ev.home_team, ev.away_team), method, res
    )


def _book_line(
    book: str,
    updated_ms: int,
    names: list[str],
    implied: Callable[[], list[Fraction]],
    teams: tuple[str, str],
    method: Method,
    res: ParseResult,
) -> BookLine | None:
    """One book's outcomes, checked against the event's teams, de-vigged (or rejected, counted)."""
    keys = [normalize(n) for n in names]
    if (
        len(keys) not in (2, 3)
        or len(set(keys)) != len(keys)
        or not {normalize(t) for t in teams} <= set(keys)
    ):
        res.reject("outcomes")
        return None
    try:
        probs = devig(implied(), method)
    except (OddsError, ValueError):
        res.reject("bad_price")
        return None
    if probs is None:
        res.reject(f"devig_{method}")
        return None
    return BookLine(book, updated_ms, dict(zip(keys, probs, strict=True)))


def parse_messages(msgs: Iterable[Odds], method: Method) -> ParseResult:
    """``odds.`` bus messages (American odds, times in ms) -> events with de-vigged lines."""
    res = ParseResult()
    for m in msgs:
        out = OddsEvent(m.event_id, m.sport_key, m.commence_ms, m.home_team, m.away_team)
        for b in m.books:
            line = _book_line(
                b.book,
                b.updated_ms,
                [p.name for p in b.prices],
                lambda b=b: [implied_american(p.american) for p in b.prices],  # type: ignore[misc]
                (m.home_team, m.away_team),
                method,
                res,
            )
            if line is not None:
                out.books[b.book] = line
        res.events.append(out)
    return res


def parse_events(raw: Any, method: Method) -> ParseResult:
    """Odds API JSON (bytes/str, or already-decoded builtins) -> events with de-vigged lines."""
    res = ParseResult()
    try:
        if isinstance(raw, (bytes, str)):
            text = raw.encode() if isinstance(raw, str) else raw
            stripped = text.lstrip()
            events = _EVENTS.decode(text) if stripped[:1] == b"[" else [_EVENT.decode(text)]
        else:
            items = raw if isinstance(raw, list) else [raw]
            events = [msgspec.convert(item, OddsApiEvent) for item in items]
    except _CONVERT_ERRORS:
        res.reject("bad_json")
        return res
    for ev in events:
        try:
            commence = iso_ms(ev.commence_time)
        except ValueError:
            res.reject("bad_commence_time")
            continue
        out = OddsEvent(ev.id, ev.sport_key, commence, ev.home_team, ev.away_team)
        for bm in ev.bookmakers:
            line = _line(ev, bm, method, res)
            if line is not None:
                out.books[bm.key] = line
        res.events.append(out)
    return res
