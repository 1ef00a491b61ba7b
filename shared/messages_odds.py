"""Sportsbook odds on the bus (the arb worker's other input). Part of the bus schema
(:mod:`shared.messages`, which re-exports them)."""

from __future__ import annotations

from typing import ClassVar

import msgspec

from shared.message_header import Header, Int64


class OddsPrice(msgspec.Struct, frozen=True, array_like=True):
    """One outcome's price at one sportsbook: American odds (+150, -120; |odds| >= 100)."""

    name: str
    american: Int64


class BookOdds(msgspec.Struct, frozen=True, array_like=True):
    """One sportsbook's head-to-head (moneyline) line for an event, as of ``updated_ms``."""

    book: str
    updated_ms: Int64
    prices: list[OddsPrice]


class Odds(Header, frozen=True, tag="odds"):
    """Sportsbook odds of one event (The Odds API's event, h2h market only), published by
    anyone with odds to offer; the arb worker reads them (``[arb] odds_source = "bus"``).
    ``event_id`` is the source's own id; outcome names are team names (and "Draw")."""

    event_id: str
    sport_key: str
    commence_ms: Int64
    home_team: str
    away_team: str
    books: list[BookOdds]
    topic_field: ClassVar[str] = "sport_key"
    durable: ClassVar[bool] = False
