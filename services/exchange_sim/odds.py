"""Sportsbook odds in The Odds API v4 shape (``/v4/sports``, ``/v4/sports/{sport}/odds``).

Prices derive from the simulator's true probabilities: each bookmaker adds its
own vig (proportional margin) and a small, deterministic per-book wobble. The
Kalshi side of a planted game quotes off these by a known edge (see
``Engine.planted``), so devigged consensus vs Kalshi mid exposes it. Only the
``h2h`` market is offered; odds formats ``american`` (default) and ``decimal``.
"""

from __future__ import annotations

import hashlib
import random
import time
from typing import Any

from aiohttp import web

from services.exchange_sim.app_key import SIM_KEY, ServedSim
from services.exchange_sim.event_model import EventModel
from services.exchange_sim.rest_json import iso
from services.exchange_sim.teams import LEAGUES

#: (key, title, vig as a fraction of 1e4: 450 = 4.5% overround)
BOOKMAKERS: tuple[tuple[str, str, int], ...] = (
    ("draftkings", "DraftKings", 450),
    ("fanduel", "FanDuel", 420),
    ("betmgm", "BetMGM", 500),
    ("caesars", "Caesars", 550),
    ("pinnacle", "Pinnacle", 250),
)
WOBBLE = 60  # at most +-0.6% probability per outcome and book


def american(prob: float) -> int:
    """Implied probability (vig included) -> American odds."""
    if prob >= 0.5:
        return -round(100 * prob / (1 - prob))
    return round(100 * (1 - prob) / prob)


def book_probs(fair: list[int], vig: int, rng: random.Random) -> list[float]:
    """One bookmaker's implied probabilities: wobbled fair, renormalised, scaled by 1 + vig."""
    wobbled = [max(50, f + rng.randrange(-WOBBLE, WOBBLE + 1)) for f in fair]
    total = sum(wobbled)
    return [w / total * (1 + vig / 10_000) for w in wobbled]


def event_odds(model: EventModel, seed: int, now_ms: int, books: set[str] | None, fmt: str) -> dict[str, Any]:
    d = model.d
    minute = now_ms // 60_000
    bookmakers = []
    for key, title, vig in BOOKMAKERS:
        if books and key not in books:
            continue
        rng = random.Random(f"{seed}:{key}:{d.event_ticker}:{minute}")
        probs = book_probs(model.fair, vig, rng)
        outcomes = [
            {"name": name, "price": american(p) if fmt == "american" else round(1 / p, 2)}
            for name, p in zip(d.outcomes, probs, strict=True)
        ]
        stamp = iso(minute * 60_000)
        bookmakers.append(
            {
                "key": key,
                "title": title,
                "last_update": stamp,
                "markets": [{"key": "h2h", "last_update": stamp, "outcomes": outcomes}],
            }
        )
    sport_title = next(lg.sport_title for lg in LEAGUES if lg.sport_key == d.sport_key)
    return {
        "id": hashlib.md5(d.event_ticker.encode()).hexdigest(),
        "sport_key": d.sport_key,
        "sport_title": sport_title,
        "commence_time": iso(d.commence_ms),
        "home_team": d.home,
        "away_team": d.away,
        "bookmakers": bookmakers,
    }


def _check_key(request: web.Request) -> web.Response | None:
    if not request.query.get("apiKey"):
        return web.json_response(
            {
                "message": "API key is missing. Pass it as the apiKey query parameter.",
                "error_code": "MISSING_KEY",
            },
            status=401,
        )
    return None


def _quota(resp: web.Response, used: int) -> web.Response:
    resp.headers["x-requests-used"] = str(used)
    resp.headers["x-requests-remaining"] = str(max(0, 500_000 - used))
    resp.headers["x-requests-last"] = "1"
    return resp


async def get_sports(request: web.Request) -> web.Response:
    if (bad := _check_key(request)) is not None:
        return bad
    return web.json_response(
        [
            {
                "key": lg.sport_key,
                "group": lg.tag,
                "title": lg.sport_title,
                "description": lg.title,
                "active": True,
                "has_outrights": False,
            }
            for lg in LEAGUES
        ]
    )


async def get_odds(request: web.Request) -> web.Response:
    if (bad := _check_key(request)) is not None:
        return bad
    sim: ServedSim = request.app[SIM_KEY]
    sport = request.match_info["sport"]
    if sport not in {lg.sport_key for lg in LEAGUES} and sport != "upcoming":
        return web.json_response({"message": "Unknown sport", "error_code": "UNKNOWN_SPORT"}, status=404)
    markets = {m.strip() for m in request.query.get("markets", "h2h").split(",")}
    if "h2h" not in markets:
        return web.json_response([])
    fmt = request.query.get("oddsFormat", "american")
    if fmt not in ("american", "decimal"):
        return web.json_response({"message": "oddsFormat must be american or decimal"}, status=422)
    books = {b.strip() for b in request.query.get("bookmakers", "").split(",") if b.strip()} or None
    now_ms = int(time.time() * 1000)
    models = [md for md in sim.engine.sports_models() if sport == "upcoming" or md.d.sport_key == sport]
    sim.odds_requests += 1
    data = [event_odds(md, sim.cfg.seed, now_ms, books, fmt) for md in models]
    return _quota(web.json_response(data), sim.odds_requests)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v4/sports", get_sports)
    app.router.add_get("/v4/sports/{sport}/odds", get_odds)
