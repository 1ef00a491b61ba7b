"""The connector keeps its MarketMeta current from lifecycle events (no stale tick ladders)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from services.connector.marketset import MarketSet, updated_meta
from shared.kalshi.discovery import MarketFilter
from shared.kalshi.rest import RestClient
from shared.messages import MarketLifecycle, MarketMeta, PriceRange

T = "KXEPLGAME-26NOV28BOUNEW-BOU"
CENT = [PriceRange(0, 10_000, 100)]
DECI_CENT = [PriceRange(0, 10_000, 10)]


def _meta() -> MarketMeta:
    return MarketMeta(
        ticker=T,
        event_ticker="KXEPLGAME-26NOV28BOUNEW",
        series_ticker="KXEPLGAME",
        title="Bournemouth vs Newcastle",
        yes_sub_title="Bournemouth",
        no_sub_title="Bournemouth",
        status="active",
        price_ranges=CENT,
        close_ms=1,
    )


async def _no_sleep(_: float) -> Any:
    return None


def _set() -> MarketSet:
    # The update path never calls REST: a client that would fail if it did.
    ms = MarketSet(cast(RestClient, None), MarketFilter(), _no_sleep)
    ms.markets[T] = _meta()
    return ms


def test_price_level_structure_update_replaces_the_ladder() -> None:
    ms = _set()
    change = asyncio.run(
        ms.follow(
            MarketLifecycle(ticker=T, event_type="price_level_structure_updated", price_ranges=DECI_CENT)
        )
    )
    assert change is not None and change.kind == "update"
    assert ms.markets[T].price_ranges == DECI_CENT
    assert change.meta is ms.markets[T]


def test_close_date_update_and_no_op_update() -> None:
    ms = _set()
    change = asyncio.run(ms.follow(MarketLifecycle(ticker=T, event_type="close_date_updated", close_ms=99)))
    assert change is not None and ms.markets[T].close_ms == 99
    # The same news again changes nothing and publishes nothing.
    assert (
        asyncio.run(ms.follow(MarketLifecycle(ticker=T, event_type="close_date_updated", close_ms=99)))
        is None
    )


def test_updated_meta_keeps_untouched_fields() -> None:
    m = updated_meta(
        _meta(), MarketLifecycle(ticker=T, event_type="metadata_updated", yes_sub_title="AFC Bournemouth")
    )
    assert m.yes_sub_title == "AFC Bournemouth"
    assert (m.price_ranges, m.title, m.close_ms) == (CENT, "Bournemouth vs Newcastle", 1)


def test_metadata_updated_strikes_reach_the_market_meta() -> None:
    m = updated_meta(
        _meta(),
        MarketLifecycle(
            ticker=T,
            event_type="metadata_updated",
            strike_type="between",
            floor_strike="95000",
            cap_strike="95250",
        ),
    )
    assert (m.strike_type, m.floor_strike, m.cap_strike) == ("between", "95000", "95250")
    assert (m.price_ranges, m.title, m.yes_sub_title) == (
        CENT,
        "Bournemouth vs Newcastle",
        _meta().yes_sub_title,
    )
