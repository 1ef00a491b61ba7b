"""REST responses out of shape or out of range: counted rejections (RestError, RangeError),
never another exception, over a real local HTTP server."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgspec
import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from shared.kalshi import parse
from shared.kalshi.numbers import RangeError
from shared.kalshi.rest import RestError
from shared.kalshi.rest_models import Market, Orderbook, Series
from shared.messages import BATCH_DECODER, BATCH_ENCODER, INT64_MAX
from shared.units import UnitError

from .test_kalshi_rest import client, server

DEEP = b'{"junk":' + b"[" * 50_000 + b"]" * 50_000 + b', "markets": []}'


def metric(name: str, **labels: str) -> float:
    """The REST client is an I/O shell: it counts into the process registry itself."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(DEEP, "json", id="nested-past-the-decoder"),
        pytest.param(b'{"markets": [{"ticker": 5, "event_ticker": "E"}]}', "schema", id="mistyped"),
        pytest.param(b'{"markets": [', "json", id="truncated"),
    ],
)
def test_a_bad_body_is_a_counted_rest_error(body: bytes, reason: str) -> None:
    async def markets(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    async def go() -> None:
        async with server({"/trade-api/v2/markets": markets}) as base, client(base) as rc:
            with pytest.raises(RestError, match=f"unexpected response body \\({reason}\\)"):
                [m async for m in rc.markets()]

    before = metric("kxfeed_rest_bad_responses_total", endpoint="/markets", reason=reason)
    asyncio.run(go())
    assert metric("kxfeed_rest_bad_responses_total", endpoint="/markets", reason=reason) - before == 1


def market(**kw: Any) -> Market:
    base: dict[str, Any] = {"ticker": "KXA-1", "event_ticker": "KXA", "status": "active"}
    return msgspec.convert({**base, **kw}, Market)


@pytest.mark.parametrize(
    "kw",
    [
        pytest.param(
            {"price_ranges": [{"start": "0", "end": "1" + "0" * 20, "step": "0.01"}]}, id="range-end"
        ),
        pytest.param(
            {"price_ranges": [{"start": "0", "end": "1", "step": "9" * 60}]}, id="range-step-60-digits"
        ),
    ],
)
def test_rest_market_numbers_out_of_range_raise_range_error(kw: dict[str, Any]) -> None:
    with pytest.raises(RangeError):
        parse.market_meta(market(**kw), 0, series_ticker="KXA")


@pytest.mark.parametrize("text", ["1e400", "Infinity", "NaN", "-1", "1" * 60, '"1e5"', "[1]", "0.0000001"])
def test_fee_multipliers_that_are_not_plain_ppm_are_unit_errors(text: str) -> None:
    series = Series(ticker="KXA", fee_type="quadratic", fee_multiplier=json.loads(json.dumps(text)).encode())
    with pytest.raises(UnitError):
        parse.fee_terms(series)


def test_fee_multiplier_forms_kalshi_sends() -> None:
    for raw, ppm in ((b"1", 1_000_000), (b"0.5", 500_000), (b'"0.25"', 250_000), (b"1.000000", 1_000_000)):
        assert parse.fee_multiplier_ppm(raw) == ppm
    assert parse.fee_multiplier_ppm(b"null") is None


def test_rest_orderbook_levels_past_int64_are_range_errors() -> None:
    book = Orderbook(yes_dollars=[("0.40", "92233720368547758.08")])
    with pytest.raises(RangeError):
        parse.levels(book.yes_dollars or [], flip=False)
    ok = parse.levels([("0.40", "92233720368547758.07")], flip=False)
    assert ok == [(4000, INT64_MAX)]


@pytest.mark.parametrize(
    "text", ["0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59", "x", "2026-13-01T00:00Z"]
)
def test_rfc3339_edges_are_unit_errors_or_in_range(text: str) -> None:
    try:
        ms = parse.rfc3339_ms(text)
    except UnitError:
        return
    assert ms is not None and -INT64_MAX <= ms <= INT64_MAX


def test_a_meta_built_from_rest_always_encodes() -> None:
    meta = parse.market_meta(
        market(open_time="0001-01-01T00:00:00Z", close_time="9999-12-31T23:59:59Z"), 0, series_ticker="KXA"
    )
    assert BATCH_DECODER.decode(BATCH_ENCODER.encode([meta])) == [meta]
