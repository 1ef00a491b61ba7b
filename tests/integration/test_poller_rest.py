"""The REST client against the real simulator: the read budget under a 429 storm, 5xx retries,
order books 100 a call, trades pages, exchange status and schedule, errors with their body."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec
import pytest

from services.exchange_sim.server import ExchangeSim
from shared.config import PollerConfig
from shared.kalshi import parse
from shared.kalshi.ratelimit import TokenBucket
from shared.kalshi.rest import RestClient, RestError
from shared.kalshi.rest_models import MarketsPage
from tests.support.sim_client import running_sim

from .test_poller_support import metric


@asynccontextmanager
async def sim_and_client(
    share: float = PollerConfig().rest_budget_share, **sim: object
) -> AsyncIterator[tuple[ExchangeSim, RestClient]]:
    async with running_sim(**sim) as exchange:
        exchange.pause()
        client = RestClient(exchange.rest_url, bucket=TokenBucket.for_tier("basic", share), max_retries=8)
        try:
            yield exchange, client
        finally:
            await client.close()


def test_a_429_storm_is_ridden_out_and_the_budget_holds_afterwards() -> None:
    async def body() -> None:
        async with sim_and_client() as (sim, rest):
            assert rest.bucket is not None
            rate = rest.bucket.requests_per_s  # 12/s: 60% of Basic's 20 reads/s
            limited = metric("kxfeed_sim_rate_limited_total")
            retried = metric("kxfeed_rest_retries_total", endpoint="/exchange/status", reason="rate_limited")
            storm_s = 1.0
            sim.faults.inject("rate429", seconds=storm_s)
            started = time.monotonic()
            done: list[float] = []

            async def caller() -> None:
                while time.monotonic() - started < storm_s + 2.0:
                    status = await rest.exchange_status()
                    assert status.exchange_active
                    done.append(time.monotonic() - started)

            await asyncio.gather(*(caller() for _ in range(4)))
            assert (
                metric("kxfeed_rest_retries_total", endpoint="/exchange/status", reason="rate_limited")
                > retried
            )
            # The exchange's own limiter never had to refuse one: we stayed inside the budget.
            assert metric("kxfeed_sim_rate_limited_total") == limited
            after = [t for t in done if t > storm_s]
            assert after, "no request got through after the storm"
            # Every stretch of time after the storm holds at most the bucket plus its refill.
            burst = rest.bucket.capacity / 10
            worst = max(
                j - i + 1 - rate * (after[j] - after[i])
                for i in range(len(after))
                for j in range(i, len(after))
            )
            assert worst <= burst + 1, (worst, burst)
            window = max(after) - min(after)
            assert len(after) >= 0.7 * rate * window, "the budget should be used, not wasted"

    asyncio.run(body())


def test_5xx_is_retried_until_it_succeeds() -> None:
    async def body() -> None:
        async with running_sim() as sim:
            quick = RestClient(sim.rest_url, max_retries=4, backoff_initial_s=0.01, backoff_max_s=0.05)
            try:
                before = metric("kxfeed_rest_retries_total", endpoint="/series", reason="http_503")
                sim.faults.inject("rest5xx", count=3, status=503)
                series = await quick.series_list()
                assert {s.ticker for s in series} >= {"KXNFLGAME", "KXNBAGAME"}
                assert (
                    metric("kxfeed_rest_retries_total", endpoint="/series", reason="http_503") - before == 3
                )
                sim.faults.inject("rest5xx", count=20, status=500)
                with pytest.raises(RestError, match="gave up after 5 attempts"):
                    await quick.series_list()
            finally:
                await quick.close()

    asyncio.run(body())


def test_orderbooks_100_a_call_equal_the_exchange() -> None:
    async def body() -> None:
        async with sim_and_client(share=1.0, markets=150) as (sim, rest):
            tickers = sim.tickers[:150]
            calls = metric("kxfeed_rest_requests_total", endpoint="/markets/orderbooks", status="200")
            books = await rest.orderbooks(tickers)
            assert (
                metric("kxfeed_rest_requests_total", endpoint="/markets/orderbooks", status="200") - calls
                == 2
            )
            assert [b.ticker for b in books] == tickers
            for b in books:
                yes = dict(parse.levels(b.orderbook_fp.yes_dollars or [], flip=False))
                no = dict(parse.levels(b.orderbook_fp.no_dollars or [], flip=False))
                assert (yes, no) == sim.truth.book(b.ticker)
            one = await rest.orderbook(tickers[0], depth=2)
            assert len(one.yes_dollars or []) <= 2 and len(one.no_dollars or []) <= 2

    asyncio.run(body())


def test_trades_pages_status_schedule_and_errors_with_body() -> None:
    async def body() -> None:
        async with sim_and_client(share=1.0) as (sim, rest):
            sim.step(400)
            total = sim.public.trades_total
            assert total > 20
            ids = [t.trade_id async for t in rest.trades(limit=7)]
            assert len(ids) == len(set(ids)) == min(total, len(sim.public.trades))
            one = sim.public.trades[-1].ticker
            mine = [t async for t in rest.trades(ticker=one, limit=3)]
            assert mine and all(t.ticker == one and t.outcome_side in ("yes", "no") for t in mine)
            for t in mine:  # 3.31: the new direction fields are kept and agree with each other
                assert t.taker_book_side == ("bid" if t.taker_outcome_side == "yes" else "ask")
                assert t.is_block_trade in (True, False)
            status = await rest.exchange_status()
            assert status.exchange_active and status.trading_active
            schedule = await rest.exchange_schedule()
            (week,) = schedule.standard_hours
            assert [(d.open_time, d.close_time) for d in week.thursday] == [
                ("00:00", "03:00"),
                ("05:00", "23:59"),
            ]
            with pytest.raises(RestError) as err:
                await rest.get("/markets", msgspec.json.Decoder(MarketsPage), {"status": "bogus"})
            assert err.value.status == 400 and "status must be one of" in str(err.value)

    asyncio.run(body())
