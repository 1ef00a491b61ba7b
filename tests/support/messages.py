"""Message factories for tests and bench: the fields a case does not care about filled once,
so each case names only what it is about."""

from __future__ import annotations

from typing import Any

from shared.messages import BookDelta, MarketMeta, PriceRange, Ticker

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
    """One side of a Kalshi game market (``team`` wins; an active NBA game unless ``fields``
    says otherwise), as the arb matcher reads it."""
    values: dict[str, Any] = {
        "series_ticker": "KXNBAGAME",
        "status": "active",
        "fee_type": "quadratic_with_maker_fees",
        **fields,
    }
    return MarketMeta(
        ticker=ticker, event_ticker=event, title=title, yes_sub_title=team, no_sub_title=team, **values
    )


def ticker_msg(ticker: str, volume: int, **fields: Any) -> Ticker:
    """A Ticker with a fixed, uncrossed top of book ($0.42 / $0.44, last $0.43) and distinct
    small stats; ``volume`` is the field a case varies (to tell messages apart)."""
    values: dict[str, Any] = {
        "market_id": "m",
        "price": 4300,
        "yes_bid": 4200,
        "yes_ask": 4400,
        "yes_bid_size": 1,
        "yes_ask_size": 2,
        "last_trade_size": 3,
        "open_interest": 5,
        "dollar_volume": 6,
        "dollar_open_interest": 7,
        **fields,
    }
    return Ticker(ticker=ticker, volume=volume, **values)


def book_delta(ticker: str, xseq: int, price: int, delta: int, **fields: Any) -> BookDelta:
    """A YES-side delta on subscription (conn 1, sid 1) unless ``fields`` says otherwise."""
    values: dict[str, Any] = {"market_id": "m", "conn": 1, "sid": 1, "side": "yes", **fields}
    return BookDelta(ticker=ticker, xseq=xseq, price=price, delta=delta, **values)
