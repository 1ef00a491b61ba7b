"""Message factories for tests and bench: the fields a case does not care about filled once,
so each case names only what it is about."""

from __future__ import annotations

from typing import Any

from shared.messages import MarketMeta, PriceRange

#: One-cent ticks over the whole $0-$1 range (the ladder of most binary markets).
CENT = [PriceRange(0, 10_000, 100)]


def book_meta(
    ticker: str, ranges: list[PriceRange] | None = None, status: str = "active", **fields: Any
) -> MarketMeta:
    """A market as the book builder needs it: its tick ladder (:data:`CENT` by default) and
    status; names and titles empty unless ``fields`` sets them."""
    return MarketMeta(
        ticker=ticker,
        event_ticker=fields.pop("event_ticker", "E"),
        series_ticker=fields.pop("series_ticker", "S"),
        title=fields.pop("title", ""),
        yes_sub_title=fields.pop("yes_sub_title", ""),
        no_sub_title=fields.pop("no_sub_title", ""),
        status=status,
        price_ranges=CENT if ranges is None else ranges,
        **fields,
    )


def game_meta(event: str, ticker: str, team: str, title: str, **fields: Any) -> MarketMeta:
    """One side of a Kalshi NBA game market (``team`` wins), as the arb matcher reads it."""
    return MarketMeta(
        ticker=ticker,
        event_ticker=event,
        series_ticker="KXNBAGAME",
        title=title,
        yes_sub_title=team,
        no_sub_title=team,
        status="active",
        fee_type="quadratic_with_maker_fees",
        **fields,
    )
