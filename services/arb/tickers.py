"""Kalshi sports event tickers -> date, start time, team codes, game number.

Format (protocol reference §8): ``{SERIES}-{YY}{MON}{DD}[{HHMM}]{TEAM1}{TEAM2}[G1|G2]``;
a market ticker is its event ticker plus ``-{OUTCOME}``. Team codes are 2-4
characters and may contain ``-`` (NCAAF ``M-OH``), so nothing here splits on ``-``:
the outcome code is what follows the event ticker, and the team pair is split where
both halves are known codes (the event's own outcome codes first, then the league
table). Two different readings = ambiguous = no answer, never a guess.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection
from dataclasses import dataclass

_MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
MONTHS = {m: i + 1 for i, m in enumerate(_MONTH_NAMES)}
_DATE = re.compile(r"^(\d{2})([A-Z]{3})(\d{2})")
TIE = "TIE"


@dataclass(frozen=True, slots=True)
class GameTicker:
    event_ticker: str
    series: str
    date: dt.date
    #: Start time in minutes after midnight (Eastern, as the ticker says), when the ticker has one.
    start_min: int | None
    #: In ticker order: away, home for US leagues; home, away for soccer.
    team1: str
    team2: str
    #: Doubleheader game number (1, 2) or 0.
    game: int


def outcome_code(market_ticker: str, event_ticker: str) -> str | None:
    """``KXNFLGAME-26JAN04BALPIT-PIT`` with event ``KXNFLGAME-26JAN04BALPIT`` -> ``PIT``."""
    if not event_ticker or not market_ticker.startswith(event_ticker + "-"):
        return None
    code = market_ticker[len(event_ticker) + 1 :]
    return code or None


def series_of(ticker: str, series: Collection[str]) -> str | None:
    """The watched series a market or event ticker belongs to (``series-`` prefix), if any."""
    head, sep, _ = ticker.partition("-")
    if sep and head in series:
        return head
    return None


def _splits(pair: str, strong: Collection[str], weak: Collection[str]) -> list[tuple[int, str, str]]:
    """Every way to cut ``pair`` into two known codes, scored 2 (both the event's own codes),
    1 (one own, one from the table) or 0 (both from the table)."""
    out = []
    for i in range(1, len(pair)):
        a, b = pair[:i], pair[i:]
        known_a = a in strong or a in weak
        known_b = b in strong or b in weak
        if known_a and known_b and a != b:
            out.append(((a in strong) + (b in strong), a, b))
    return out


def parse_game(
    event_ticker: str, series: str, own_codes: Collection[str], table_codes: Collection[str] = ()
) -> GameTicker | None:
    """Parse a game's event ticker; None when malformed or ambiguous.

    ``own_codes``: outcome codes of the event's markets (``TIE`` ignored);
    ``table_codes``: the league's known team codes.
    """
    if not event_ticker.startswith(series + "-"):
        return None
    rest = event_ticker[len(series) + 1 :]
    m = _DATE.match(rest)
    if m is None or m.group(2) not in MONTHS:
        return None
    try:
        date = dt.date(2000 + int(m.group(1)), MONTHS[m.group(2)], int(m.group(3)))
    except ValueError:
        return None
    tail = rest[m.end() :]
    strong = {c for c in own_codes if c != TIE}
    readings: list[tuple[int, int | None, str, str, int]] = []
    times: list[tuple[int | None, str]] = [(None, tail)]
    if len(tail) > 4 and tail[:4].isdigit():
        hh, mm = int(tail[:2]), int(tail[2:4])
        if hh < 24 and mm < 60:
            times.append((hh * 60 + mm, tail[4:]))
    for start, body in times:
        bodies = [(body, 0)]
        if len(body) > 2 and body[-2] == "G" and body[-1] in "12":
            bodies.append((body[:-2], int(body[-1])))
        for pair, game in bodies:
            for score, a, b in _splits(pair, strong, table_codes):
                readings.append((score, start, a, b, game))
    if not readings:
        return None
    best = max(r[0] for r in readings)
    top = {r[1:] for r in readings if r[0] == best}
    if len(top) != 1:
        return None
    start, a, b, game = top.pop()
    return GameTicker(event_ticker, series, date, start, a, b, game)
