"""An Odds API event as the arb tests use it: Sacramento Kings (home) vs Memphis Grizzlies on
2026-02-05, moneyline prices from two bookmakers (the JSON of ``/v4/sports/.../odds``)."""

from __future__ import annotations

import datetime as dt
from typing import Any


def iso(ms: int) -> str:
    """Milliseconds since the epoch as the Odds API writes a time (UTC, whole seconds)."""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sac_mem_event(event_id: str, updated_ms: int, sac: int = -150, mem: int = 150) -> dict[str, Any]:
    """The event with American odds ``sac`` and ``mem`` at draftkings and fanduel, both last
    updated at ``updated_ms``."""
    books = [
        {
            "key": key,
            "last_update": iso(updated_ms),
            "markets": [
                {
                    "key": "h2h",
                    "outcomes": [
                        {"name": "Sacramento Kings", "price": sac},
                        {"name": "Memphis Grizzlies", "price": mem},
                    ],
                }
            ],
        }
        for key in ("draftkings", "fanduel")
    ]
    return {
        "id": event_id,
        "sport_key": "basketball_nba",
        "commence_time": "2026-02-05T00:10:00Z",
        "home_team": "Sacramento Kings",
        "away_team": "Memphis Grizzlies",
        "bookmakers": books,
    }
