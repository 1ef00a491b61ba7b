"""The REST client's read budget (token bucket per Kalshi tier), the endpoints added for the
poller and gap filler, and error messages that carry the response body."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from shared.kalshi.ratelimit import READ_TIERS, TokenBucket
from shared.kalshi.rest import (
    RestAuthError,
    RestClient,
    RestError,
    RestNotFound,
)
from tests.support.fakeclock import FakeClock

from .test_kalshi_rest import server


def test_tiers_match_kalshi_and_basic_is_20_reads_a_second() -> None:
    b = TokenBucket.for_tier("basic", now=0.0)
    assert (b.rate, b.capacity, b.requests_per_s) == (200.0, 400.0, 20.0)
    assert TokenBucket.for_tier("premier", now=0.0).requests_per_s == 100.0
    half = TokenBucket.for_tier("advanced", 0.5, now=0.0)
    assert (half.requests_per_s, half.capacity) == (15.0, 300.0)
    assert set(READ_TIERS) == {"basic", "advanced", "expert", "premier", "paragon", "prime", "prestige"}
    with pytest.raises(ValueError, match="unknown Kalshi rate-limit tier"):
        TokenBucket.for_tier("gold")
    with pytest.raises(ValueError, match="share"):
        TokenBucket.for_tier("basic", 1.5)


def test_bucket_bursts_its_capacity_then_queues_at_the_refill_rate() -> None:
    b = TokenBucket.for_tier("basic", now=0.0)
    assert [b.reserve(0.0) for _ in range(40)] == [0.0] * 40  # 2 s of budget at once
    assert b.reserve(0.0) == pytest.approx(0.05)
    assert b.reserve(0.0) == pytest.approx(0.10)  # reservations queue behind each other
    assert b.reserve(1.0) == pytest.approx(0.0)  # 1 s refilled 20 requests, 3 owed
    b.empty(1.0)
    assert b.tokens <= 0 and b.reserve(1.0) == pytest.approx(0.05)
    b2 = TokenBucket(10.0, 20.0, now=0.0)
    b2.reserve(0.0)
    b2.reserve(1000.0)
    assert b2.tokens == 10.0  # refill stops at the capacity


def test_client_paces_requests_by_the_budget_and_counts_the_wait() -> None:
    t = FakeClock()
    calls: list[float] = []

    async def status(request: web.Request) -> web.Response:
        calls.append(t.now)
        return web.json_response({"exchange_active": True, "trading_active": False})

    before = (
        REGISTRY.get_sample_value("kxfeed_rest_budget_wait_seconds_total", {"endpoint": "/exchange/status"})
        or 0.0
    )

    async def body() -> None:
        async with server({"/trade-api/v2/exchange/status": status}) as base:
            bucket = TokenBucket.for_tier("basic", 0.5, now=t.now)  # 10/s, burst 20
            async with RestClient(base, bucket=bucket, sleep=t.sleep, clock=t) as rc:
                for _ in range(30):
                    s = await rc.exchange_status()
                    assert s.exchange_active and not s.trading_active

    asyncio.run(body())
    assert len(calls) == 30
    assert calls[19] == 100.0 and calls[20] == pytest.approx(100.1)
    assert calls[-1] - calls[0] == pytest.approx(1.0)  # 10 beyond the burst at 10/s
    waited = REGISTRY.get_sample_value(
        "kxfeed_rest_budget_wait_seconds_total", {"endpoint": "/exchange/status"}
    )
    assert waited == pytest.approx(before + 1.0)


def test_429_empties_the_bucket_before_the_jittered_backoff() -> None:
    t = FakeClock()
    answers = [429, 429, 200]
    calls: list[float] = []

    async def series(request: web.Request) -> web.Response:
        calls.append(t.now)
        code = answers.pop(0)
        if code == 429:
            return web.json_response({"error": "too many requests"}, status=429)
        return web.json_response({"series": [{"ticker": "KXNBAGAME", "category": "Sports"}]})

    async def body() -> list[str]:
        async with server({"/trade-api/v2/series": series}) as base:
            bucket = TokenBucket.for_tier("basic", now=t.now)  # full: 40 requests of burst
            async with RestClient(
                base,
                bucket=bucket,
                sleep=t.sleep,
                clock=t,
                rng=random.Random(3),
                backoff_initial_s=0.01,
            ) as rc:
                return [s.ticker for s in await rc.series_list()]

    assert asyncio.run(body()) == ["KXNBAGAME"]
    # After each 429 the next attempt waits for a token (0.05 s at 20/s), however short the
    # jitter: the full bucket was not trusted once the exchange said it was spent.
    assert len(calls) == 3
    assert all(b - a >= 0.05 - 1e-9 for a, b in itertools.pairwise(calls))
    assert max(t.sleeps) <= 0.05 + 1e-9


def test_orderbooks_go_100_a_call_with_repeated_tickers() -> None:
    seen: list[list[str]] = []

    async def books(request: web.Request) -> web.Response:
        tickers = request.query.getall("tickers")
        seen.append(tickers)
        return web.json_response(
            {
                "orderbooks": [
                    {"ticker": tk, "orderbook_fp": {"yes_dollars": [["0.4200", "10.00"]], "no_dollars": None}}
                    for tk in tickers
                ]
            }
        )

    wanted = [f"KX-{i:03d}" for i in range(250)]

    async def body() -> list[str]:
        async with server({"/trade-api/v2/markets/orderbooks": books}) as base, RestClient(base) as rc:
            out = await rc.orderbooks(wanted)
            assert out[0].orderbook_fp.yes_dollars == [("0.4200", "10.00")]
            assert out[0].orderbook_fp.no_dollars is None
            return [b.ticker for b in out]

    assert asyncio.run(body()) == wanted
    assert [len(s) for s in seen] == [100, 100, 50]


def test_schedule_days_and_errors_carry_the_body() -> None:
    schedule = {
        "schedule": {
            "standard_hours": [
                {
                    "start_time": "2024-01-01T00:00:00Z",
                    "end_time": "2099-01-01T00:00:00Z",
                    **{d: [{"open_time": "08:00", "close_time": "20:00"}] for d in
                       ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday")},
                    "sunday": [],
                }
            ],
            "maintenance_windows": [
                {"start_datetime": "2026-11-26T08:00:00Z", "end_datetime": "2026-11-26T10:00:00Z"}
            ],
        }
    }  # fmt: skip

    async def sched(request: web.Request) -> web.Response:
        return web.json_response(schedule)

    async def bad(request: web.Request) -> web.Response:
        return web.json_response(
            {"code": "bad_request", "message": "limit must be between 1 and 1000"}, status=400
        )

    async def missing(request: web.Request) -> web.Response:
        return web.json_response({"code": "not_found", "message": "market not found"}, status=404)

    async def refused(request: web.Request) -> web.Response:
        return web.json_response({"code": "authentication_error", "details": "stale timestamp"}, status=401)

    async def body() -> None:
        routes: dict[str, Any] = {
            "/trade-api/v2/exchange/schedule": sched,
            "/trade-api/v2/markets/trades": bad,
            "/trade-api/v2/markets/{t}/orderbook": missing,
            "/trade-api/v2/exchange/status": refused,
        }
        async with server(routes) as base, RestClient(base) as rc:
            s = await rc.exchange_schedule()
            (week,) = s.standard_hours
            assert week.day(0)[0].open_time == "08:00" and week.day(6) == []
            assert s.maintenance_windows[0].end_datetime == "2026-11-26T10:00:00Z"
            with pytest.raises(RestError) as err:
                [t async for t in rc.trades(limit=5000)]
            assert err.value.status == 400 and "limit must be between 1 and 1000" in str(err.value)
            with pytest.raises(RestNotFound, match="market not found"):
                await rc.orderbook("NOPE")
            with pytest.raises(RestAuthError) as auth:
                await rc.exchange_status()
            assert "stale timestamp" in str(auth.value) and "KALSHI_KEY_ID" in str(auth.value)

    asyncio.run(body())
    assert json.dumps(schedule)  # the fixture is plain JSON


def test_take_refuses_when_empty_and_refills_with_the_injected_clock() -> None:
    """The simulator's side of the bucket: over budget is refused, nothing is borrowed."""
    b = TokenBucket(10.0, 20.0, now=0.0)  # 10 tokens/s, burst 20
    assert [b.take(0.0, 10.0) for _ in range(3)] == [True, True, False]
    assert b.tokens == 0.0  # the refused take took nothing
    assert not b.take(0.5, 10.0)  # 5 tokens: not enough
    assert b.take(1.0, 10.0)  # 10 tokens after a second
    assert b.take(100.0, 20.0) and not b.take(100.0, 0.5)  # refill stops at the capacity
