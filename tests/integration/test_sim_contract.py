"""Contract: every frame kind the simulator emits validates against Kalshi's AsyncAPI spec, and
every REST response against the OpenAPI spec (copies in tests/fixtures/kalshi-spec/).

Where the specs and the protocol reference (newer docs) differ, the simulator follows the
reference and these tests say so: lifecycle frames carry ``seq`` and every data frame carries
``sending_ts_ms`` (extra properties the 2026-08 AsyncAPI allows); terminal errors carry the
``sid`` they end (also an allowed extra).
"""

from __future__ import annotations

import asyncio
import datetime
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
import yaml

from tests.support.sim_client import BookClient, running_sim

SPEC_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "kalshi-spec"
PREVIOUS_SPEC_DIR = SPEC_DIR / "previous"


def _openapi_nullable(node: Any) -> Any:
    """OpenAPI 3.0 ``nullable: true`` -> JSON Schema ``type: [T, "null"]`` (and null in enums)."""
    if isinstance(node, dict):
        out = {k: _openapi_nullable(v) for k, v in node.items()}
        if out.get("nullable") is True:
            if isinstance(out.get("type"), str):
                out["type"] = [out["type"], "null"]
            if isinstance(out.get("enum"), list) and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
            if "$ref" in out:
                out = {"anyOf": [{"$ref": out.pop("$ref")}, {"type": "null"}], **out}
        return out
    if isinstance(node, list):
        return [_openapi_nullable(v) for v in node]
    return node


FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    if isinstance(value, str):
        datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True


@FORMATS.checks("uuid", raises=ValueError)
def _uuid(value: object) -> bool:
    if isinstance(value, str):
        uuid.UUID(value)
    return True


class Spec:
    def __init__(self, path: Path) -> None:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        self.doc = _openapi_nullable(yaml.load(path.read_text(), Loader=loader))
        self._validators: dict[str, jsonschema.Draft202012Validator] = {}

    def validate(self, instance: Any, schema_name: str) -> None:
        v = self._validators.get(schema_name)
        if v is None:
            schema = {**self.doc, "$ref": f"#/components/schemas/{schema_name}"}
            v = self._validators[schema_name] = jsonschema.Draft202012Validator(
                schema, format_checker=FORMATS
            )
        v.validate(instance)


@pytest.fixture(scope="module")
def asyncapi() -> Spec:
    return Spec(SPEC_DIR / "asyncapi.yaml")


@pytest.fixture(scope="module")
def previous_asyncapi() -> Spec:
    return Spec(PREVIOUS_SPEC_DIR / "asyncapi.yaml")


@pytest.fixture(scope="module")
def openapi() -> Spec:
    return Spec(SPEC_DIR / "openapi.yaml")


WS_SCHEMAS = {
    "subscribed": "subscribedResponsePayload",
    "unsubscribed": "unsubscribedResponsePayload",
    "error": "errorResponsePayload",
    "orderbook_snapshot": "orderbookSnapshotPayload",
    "orderbook_delta": "orderbookDeltaPayload",
    "ticker": "tickerPayload",
    "trade": "tradePayload",
    "market_lifecycle_v2": "marketLifecycleV2Payload",
    "event_lifecycle": "eventLifecyclePayload",
    "event_fee_update": "eventFeeUpdatePayload",
}


def test_every_ws_frame_kind_validates(previous_asyncapi: Spec) -> None:
    asyncapi = previous_asyncapi  # until the simulator's frames follow the current AsyncAPI

    async def collect() -> list[dict[str, Any]]:
        async with running_sim(markets=16, rate=600.0, lifecycle_every=15) as sim:
            c = await BookClient(sim.ws_url).connect()
            await c.subscribe(
                ["orderbook_delta", "ticker", "trade", "market_lifecycle_v2"],
                sim.tickers[:8],
                send_initial_snapshot=True,
            )
            await c.subscribe(["orderbook_delta"], sim.tickers[8:10], use_yes_price=True)
            await c.pump(quiet=0.1, limit=1.5)
            await c.send(
                "update_subscription",
                {"sid": 1, "market_tickers": [sim.tickers[12]], "action": "add_markets"},
            )
            await c.send("list_subscriptions")
            await c.send("subscribe", {"channels": ["nope"]})
            await c.send("unsubscribe", {"sids": [3]})
            sim.faults.inject("error25", sid=2)
            sim.pause()
            await c.pump(quiet=0.2, limit=3)
            await c.close()
            return c.frames

    frames = asyncio.run(collect())
    seen: dict[str, int] = {}
    lifecycle_events: set[str] = set()
    for f in frames:
        kind = f["type"]
        if seen.get(kind, 0) >= 150 and kind != "market_lifecycle_v2":
            continue  # enough of a kind; every lifecycle event type is still checked
        if kind == "ok":
            schema = (
                "listSubscriptionsResponsePayload" if isinstance(f.get("msg"), list) else "okResponsePayload"
            )
        else:
            schema = WS_SCHEMAS[kind]
        asyncapi.validate(f, schema)
        seen[kind] = seen.get(kind, 0) + 1
        if kind == "market_lifecycle_v2":
            lifecycle_events.add(f["msg"]["event_type"])
        if kind in WS_SCHEMAS and kind not in ("subscribed", "unsubscribed", "error"):
            assert isinstance(f["sending_ts_ms"], int)  # protocol reference: on every data frame
    assert set(WS_SCHEMAS) | {"ok"} <= set(seen), seen
    assert {"created", "close_date_updated"} <= lifecycle_events, lifecycle_events


REST_CASES = [
    ("/markets?limit=5", "GetMarketsResponse"),
    ("/markets?status=open&series_ticker=KXNBAGAME", "GetMarketsResponse"),
    ("/markets/{ticker}", "GetMarketResponse"),
    ("/markets/{ticker}/orderbook?depth=3", "GetMarketOrderbookResponse"),
    ("/markets/orderbooks?tickers={ticker}&tickers={ticker2}", "GetMarketOrderbooksResponse"),
    ("/events?with_nested_markets=true&limit=3", "GetEventsResponse"),
    ("/events/{event}?with_nested_markets=true", "GetEventResponse"),
    ("/series?category=Sports", "GetSeriesListResponse"),
    ("/series/KXNFLGAME?include_volume=true", "GetSeriesResponse"),
    ("/markets/trades?limit=20", "GetTradesResponse"),
    ("/exchange/status", "ExchangeStatus"),
    ("/exchange/schedule", "GetExchangeScheduleResponse"),
    ("/markets/NOPE-1", "ErrorResponse"),
]


def test_rest_responses_validate(openapi: Spec) -> None:
    async def fetch() -> list[tuple[str, str, int, Any]]:
        out = []
        async with running_sim(markets=20, rate=500.0, lifecycle_every=30) as sim:
            await asyncio.sleep(0.5)
            t = sim.tickers[0]
            names = {"ticker": t, "ticker2": sim.tickers[1], "event": sim.public.markets[t].d.event_ticker}
            async with aiohttp.ClientSession() as http:
                for path, schema in REST_CASES:
                    async with http.get(sim.rest_url + path.format(**names)) as r:
                        out.append((path, schema, r.status, await r.json()))
        return out

    for path, schema, status, body in asyncio.run(fetch()):
        assert status == (404 if schema == "ErrorResponse" else 200), (path, body)
        openapi.validate(body, schema)
        if schema == "GetTradesResponse":
            assert body["trades"], "activity produced trades"


PAGED_CASES = [
    ("/markets?limit=7", "markets", "GetMarketsResponse"),
    ("/events?with_nested_markets=true&limit=4", "events", "GetEventsResponse"),
    ("/markets/trades?limit=3&ticker={ticker}", "trades", "GetTradesResponse"),
]


def test_rest_pages_validate(openapi: Spec) -> None:
    """A 3.31 client walks every page of markets, events (nested markets) and one market's trades."""

    async def walk() -> list[tuple[str, str, str, list[Any]]]:
        out = []
        async with running_sim(markets=20, rate=500.0, lifecycle_every=30) as sim:
            await asyncio.sleep(0.5)
            async with aiohttp.ClientSession() as http:
                for path, key, schema in PAGED_CASES:
                    bodies: list[Any] = []
                    cursor = ""
                    while True:
                        url = sim.rest_url + path.format(ticker=sim.tickers[0])
                        async with http.get(url + (f"&cursor={cursor}" if cursor else "")) as r:
                            assert r.status == 200, (url, await r.text())
                            body = await r.json()
                        bodies.append(body)
                        cursor = body["cursor"]
                        if not cursor or not body[key] or len(bodies) > 50:
                            break
                    out.append((path, key, schema, bodies))
        return out

    for path, key, schema, bodies in asyncio.run(walk()):
        for body in bodies:
            openapi.validate(body, schema)
        items = [item for body in bodies for item in body[key]]
        if key != "trades":  # how many trades one market has made by now is the activity's business
            assert len(bodies) > 1 and items, (path, "more than one page")
        if key == "markets":
            assert len({m["ticker"] for m in items}) == len(items) >= 20  # lifecycle may add some
            assert all(m["settlement_bounds_type"] == "default" for m in items)
        if key == "events":
            assert all(e["markets"] and "settlement_sources" in e for e in items)
        if key == "trades":
            assert len({t["trade_id"] for t in items}) == len(items), "pages do not overlap"
