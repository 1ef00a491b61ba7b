"""Market discovery over real HTTP against the simulator's REST API."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from prometheus_client import REGISTRY

from services.exchange_sim.server import ExchangeSim
from shared.config import ConnectorConfig, SimConfig
from shared.kalshi.discovery import MarketFilter, SeriesCatalog, discover
from shared.kalshi.rest import RestClient
from shared.messages import MarketMeta

Find = Callable[..., Awaitable[dict[str, MarketMeta]]]


def with_sim(body: Callable[[ExchangeSim, Find], Awaitable[None]], fault: str = "") -> None:
    async def main() -> None:
        sim = ExchangeSim(SimConfig(port=0, markets=24, rate=0.001, seed=5))
        await sim.start()
        try:
            if fault:
                sim.faults.inject(fault, count=2)
            async with RestClient(sim.rest_url, backoff_initial_s=0.01) as rc:

                async def find(shard_index: int | None = None, **filters: Any) -> dict[str, MarketMeta]:
                    filt = MarketFilter.from_config(ConnectorConfig(**filters), shard_index)
                    return await discover(rc, filt, SeriesCatalog(rc))

                await body(sim, find)
        finally:
            await sim.stop()

    asyncio.run(main())


def test_filters_select_the_right_markets() -> None:
    async def body(sim: ExchangeSim, find: Find) -> None:
        everything = await find()
        assert set(everything) == set(sim.tickers) and len(everything) >= 20
        by_series: dict[str, set[str]] = {}
        for t, m in everything.items():
            by_series.setdefault(m.series_ticker, set()).add(t)
        sports = {t for t, m in everything.items() if m.category == "Sports"}
        other = {m.category for m in everything.values() if m.category != "Sports"}
        assert sports and other
        series = sorted(s for s in by_series if everything[min(by_series[s])].category != "Sports")[0]
        category = sorted(other)[0]
        lone = sorted(set(everything) - by_series[series])[0]

        assert set(await find(series=[series])) == by_series[series]
        in_cat = {t for t, m in everything.items() if m.category == category}
        assert set(await find(categories=[category.upper()])) == in_cat  # case does not matter
        assert set(await find(series=[series], tickers=[lone])) == by_series[series] | {lone}
        assert set(await find(sports_only=True)) == sports
        assert await find(sports_only=True, categories=[category]) == {}
        # What the orderbook needs from MarketMeta is filled in.
        m = everything[lone]
        assert m.series_ticker and m.category and m.fee_type and m.status == "active"
        assert m.price_ranges and m.event_ticker and lone.startswith(m.event_ticker) and m.close_ms

    with_sim(body)


def test_shards_split_the_set() -> None:
    async def body(sim: ExchangeSim, find: Find) -> None:
        shards = [await find(shard_index=i, shard_count=3) for i in range(3)]
        assert sum(len(s) for s in shards) == len(sim.tickers)
        assert set().union(*shards) == set(sim.tickers)

    with_sim(body)


@pytest.mark.parametrize("fault", ["rate429", "rest5xx"])
def test_discovery_rides_out_throttling_and_errors(fault: str) -> None:
    reason = "rate_limited" if fault == "rate429" else "http_500"

    def retries() -> float:
        return sum(
            s.value
            for metric in REGISTRY.collect()
            if metric.name == "kxfeed_rest_retries"
            for s in metric.samples
            if s.name.endswith("_total") and s.labels["reason"] == reason
        )

    before = retries()

    async def body(sim: ExchangeSim, find: Find) -> None:
        assert set(await find()) == set(sim.tickers)

    with_sim(body, fault)
    assert retries() - before == 2
