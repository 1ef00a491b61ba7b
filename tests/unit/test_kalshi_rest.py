"""The REST client against a real local HTTP server: pagination, signing, retries, refusals."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from shared.kalshi.rest import RestAuthError, RestClient, RestError, RestNotFound

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "kalshi"
Handler = Callable[[web.Request], Any]


@asynccontextmanager
async def server(routes: dict[str, Handler]) -> AsyncIterator[str]:
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/trade-api/v2"
    finally:
        await runner.cleanup()


async def no_sleep(_: float) -> None:
    return None


def client(base: str, **kw: Any) -> RestClient:
    return RestClient(base, sleep=no_sleep, rng=random.Random(1), **kw)


def test_markets_paginate_with_cursor_and_sign_the_path() -> None:
    pages = [
        json.loads((FIX / "rest_markets_page.json").read_text()),
        json.loads((FIX / "rest_markets_last_page.json").read_text()),
    ]
    seen: list[dict[str, str]] = []
    signed: list[tuple[str, str]] = []

    async def markets(request: web.Request) -> web.Response:
        seen.append(dict(request.query))
        return web.json_response(pages[1] if request.query.get("cursor") else pages[0])

    async def body() -> list[str]:
        async with server({"/trade-api/v2/markets": markets}) as base:
            rc = client(base, signer=lambda m, p: signed.append((m, p)) or {"KALSHI-ACCESS-KEY": "k"})
            try:
                return [m.ticker async for m in rc.markets(status="open", series_ticker="KXNBAGAME")]
            finally:
                await rc.close()

    tickers = asyncio.run(body())
    assert tickers == ["KXNBAGAME-26NOV03LALBOS-LAL", "KXNBAGAME-26NOV03LALBOS-BOS", "INXD-23SEP14-B4487"]
    assert seen[0] == {"limit": "1000", "status": "open", "series_ticker": "KXNBAGAME"}
    assert seen[1]["cursor"] == pages[0]["cursor"]
    assert signed == [("GET", "/trade-api/v2/markets")] * 2  # full path, never the query


def test_retries_429_and_5xx_then_succeeds() -> None:
    answers = [429, 503, 500, 200]

    async def events(request: web.Request) -> web.Response:
        status = answers.pop(0)
        if status == 429:
            return web.json_response({"error": "too many requests"}, status=429)
        if status != 200:
            return web.Response(status=status, text="oops")
        return web.json_response(
            {"events": [{"event_ticker": "E-1", "series_ticker": "S", "category": "Sports"}], "cursor": ""}
        )

    before = (
        REGISTRY.get_sample_value(
            "kxfeed_rest_retries_total", {"endpoint": "/events", "reason": "rate_limited"}
        )
        or 0
    )

    async def body() -> list[str]:
        async with server({"/trade-api/v2/events": events}) as base, client(base) as rc:
            return [e.series_ticker async for e in rc.events(status="open")]

    assert asyncio.run(body()) == ["S"]
    assert not answers
    after = REGISTRY.get_sample_value(
        "kxfeed_rest_retries_total", {"endpoint": "/events", "reason": "rate_limited"}
    )
    assert after == before + 1
    assert REGISTRY.get_sample_value(
        "kxfeed_rest_retries_total", {"endpoint": "/events", "reason": "http_503"}
    )


def test_gives_up_after_max_retries() -> None:
    calls = 0

    async def series(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        return web.Response(status=500)

    async def body() -> None:
        async with server({"/trade-api/v2/series": series}) as base, client(base, max_retries=2) as rc:
            await rc.series_list()

    with pytest.raises(RestError, match="gave up after 3 attempts"):
        asyncio.run(body())
    assert calls == 3


def test_refusal_and_not_found_are_not_retried() -> None:
    calls = {"auth": 0, "missing": 0}

    async def auth(request: web.Request) -> web.Response:
        calls["auth"] += 1
        return web.json_response({"code": "authentication_error"}, status=401)

    async def missing(request: web.Request) -> web.Response:
        calls["missing"] += 1
        return web.json_response({"code": "not_found"}, status=404)

    async def body() -> None:
        async with (
            server({"/trade-api/v2/series/{s}": auth, "/trade-api/v2/markets/{t}": missing}) as base,
            client(base) as rc,
        ):
            with pytest.raises(RestAuthError) as err:
                await rc.series("KXNBAGAME")
            assert err.value.status == 401 and "KALSHI_KEY_ID" in str(err.value)
            with pytest.raises(RestNotFound):
                await rc.market("NOPE")

    asyncio.run(body())
    assert calls == {"auth": 1, "missing": 1}


def test_single_objects_decode() -> None:
    async def event(request: web.Request) -> web.Response:
        return web.Response(body=(FIX / "rest_event.json").read_bytes(), content_type="application/json")

    async def series(request: web.Request) -> web.Response:
        return web.Response(body=(FIX / "rest_series.json").read_bytes(), content_type="application/json")

    async def body() -> tuple[Any, Any]:
        async with (
            server({"/trade-api/v2/events/{e}": event, "/trade-api/v2/series/{s}": series}) as base,
            client(base) as rc,
        ):
            return await rc.event("KXNBAGAME-26NOV03LALBOS"), await rc.series("KXNBAGAME")

    ev, se = asyncio.run(body())
    assert (ev.series_ticker, ev.category) == ("KXNBAGAME", "Sports")
    assert (se.category, se.fee_type, bytes(se.fee_multiplier)) == ("Sports", "quadratic", b"1")


def test_connection_refused_is_retried_then_reported() -> None:
    async def body() -> None:
        async with client("http://127.0.0.1:9/trade-api/v2", max_retries=1) as rc:
            await rc.series_list()

    with pytest.raises(RestError, match="gave up"):
        asyncio.run(body())


def test_trades_decode_both_spec_vintages() -> None:
    """3.31 makes ``taker_side`` optional and adds the outcome/book sides; 3.13 sent only ``taker_side``."""
    base_trade = {
        "ticker": "KXT-1",
        "count_fp": "3.00",
        "yes_price_dollars": "0.4200",
        "no_price_dollars": "0.5800",
        "created_time": "2026-12-03T07:00:00Z",
    }
    trades = [
        {
            **base_trade,
            "trade_id": "new",
            "taker_outcome_side": "no",
            "taker_book_side": "ask",
            "is_block_trade": True,
        },
        {**base_trade, "trade_id": "old", "taker_side": "yes"},
        {**base_trade, "trade_id": "book", "taker_book_side": "bid", "is_block_trade": False},
    ]

    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"trades": trades, "cursor": ""})

    async def body() -> list[Any]:
        async with server({"/trade-api/v2/markets/trades": handler}) as base, client(base) as rc:
            return [t async for t in rc.trades()]

    new, old, book = asyncio.run(body())
    assert (new.outcome_side, new.taker_book_side, new.is_block_trade, new.taker_side) == (
        "no",
        "ask",
        True,
        None,
    )
    assert (old.outcome_side, old.taker_outcome_side, old.is_block_trade) == ("yes", None, False)
    assert book.outcome_side == "yes"
