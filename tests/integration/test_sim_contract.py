"""Contract: every frame kind the simulator emits validates against Kalshi's current AsyncAPI
(December 2026) and still against the previous one, and every REST response against OpenAPI
3.31 (copies in tests/fixtures/kalshi-spec/, the older pair under previous/).

Where the specs and the protocol reference differ, these tests say which they follow: every data
frame carries ``sending_ts_ms`` (an extra property both AsyncAPIs allow; the reference says read
it when present); whether an ``ok`` to update_subscription takes a seq is unconfirmed
(section 0), so the frame test runs under both ``ok_consumes_seq`` settings.
"""

from __future__ import annotations

import asyncio
import datetime
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
import yaml

from shared.units import format_price, parse_count
from tests.support.sim_client import SEQUENCED_DATA, BookClient, running_sim

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
            if "allOf" in out:  # e.g. EventFeeChange.fee_type_override: "When null, ... clears"
                out = {"anyOf": [{"allOf": out.pop("allOf")}, {"type": "null"}], **out}
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
#: Sequenced per sid in the current AsyncAPI (``seq`` required).
SEQUENCED = SEQUENCED_DATA


def ws_schema(f: dict[str, Any]) -> str:
    kind = f["type"]
    if kind == "ok":
        return "listSubscriptionsResponsePayload" if isinstance(f.get("msg"), list) else "okResponsePayload"
    if kind == "market_lifecycle_v2" and f["msg"].get("event_type") == "metadata_updated":
        return "marketMetadataUpdatedPayload"  # its own message shape since the December AsyncAPI
    return WS_SCHEMAS[kind]


async def collect_frames(ok_consumes_seq: bool) -> tuple[list[dict[str, Any]], dict[str, int], list[Any]]:
    """Every frame kind the simulator sends, with the ids of the get_snapshot commands."""
    async with running_sim(
        markets=16, rate=600.0, lifecycle_every=15, ok_consumes_seq=ok_consumes_seq
    ) as sim:
        c = await BookClient(sim.ws_url).connect()
        await c.subscribe(
            ["orderbook_delta", "ticker", "trade", "market_lifecycle_v2"],
            sim.tickers[:8],
            send_initial_snapshot=True,
        )
        await c.subscribe(["orderbook_delta"], sim.tickers[8:10], use_yes_price=True)
        await c.pump(quiet=0.1, limit=1.5)
        ids = {
            "add": await c.send(
                "update_subscription",
                {"sid": 1, "market_tickers": [sim.tickers[12]], "action": "add_markets"},
            ),
            "snapshot": await c.send(
                "update_subscription",
                {"sid": 1, "market_tickers": sim.tickers[:2], "action": "get_snapshot"},
            ),
            # A refusal about a live subscription: it names the sid (and its last seq).
            "refused": await c.send(
                "update_subscription",
                {"sid": 1, "market_tickers": [sim.tickers[14]], "action": "get_snapshot"},
            ),
            "unknown_market": await c.send(
                "subscribe", {"channels": ["trade"], "market_tickers": ["KXNOPE-1"]}
            ),
        }
        await c.send("list_subscriptions")
        await c.send("subscribe", {"channels": ["nope"]})
        await c.send("unsubscribe", {"sids": [2]})  # ticker
        sim.faults.inject("error25", sid=3)  # trade: a terminal error on a sequenced channel
        sim.pause()
        await c.pump(quiet=0.2, limit=3)
        await c.close()
        return c.frames, ids, c.seq_errors


@pytest.mark.parametrize("ok_consumes_seq", [False, True], ids=["ok-repeats-seq", "ok-takes-seq"])
def test_every_ws_frame_kind_validates(
    asyncapi: Spec, previous_asyncapi: Spec, ok_consumes_seq: bool
) -> None:
    """Every frame validates against the current AsyncAPI, and still against the previous one
    (a client written to either reads the simulator while Kalshi rolls the change out)."""
    frames, ids, seq_errors = asyncio.run(collect_frames(ok_consumes_seq))
    assert not seq_errors, seq_errors  # every sequenced sid is contiguous (ok rule of section 0)
    seen: dict[str, int] = {}
    lifecycle_events: set[str] = set()
    last_seq: dict[int, int] = {}
    for f in frames:
        kind = f["type"]
        if kind in SEQUENCED:
            last_seq[f["sid"]] = f["seq"]
        if seen.get(kind, 0) >= 150 and kind != "market_lifecycle_v2":
            continue  # enough of a kind; every lifecycle event type is still checked
        asyncapi.validate(f, ws_schema(f))
        # The previous spec had metadata_updated as one more lifecycle event type.
        previous_asyncapi.validate(f, ws_schema(f).replace("marketMetadataUpdated", "marketLifecycleV2"))
        seen[kind] = seen.get(kind, 0) + 1
        if kind == "market_lifecycle_v2":
            lifecycle_events.add(f["msg"]["event_type"])
        if kind in WS_SCHEMAS and kind not in ("subscribed", "unsubscribed", "error"):
            assert isinstance(f["sending_ts_ms"], int)  # protocol reference: on every data frame
        if kind == "error":
            assert f["msg"]["code"] not in (6, 16, 17), f  # retired
    assert set(WS_SCHEMAS) | {"ok"} <= set(seen), seen
    assert {"created", "close_date_updated", "metadata_updated"} <= lifecycle_events, lifecycle_events

    by_id = [f for f in frames if f.get("id") == ids["snapshot"]]
    assert [f["type"] for f in by_id] == ["ok", "orderbook_snapshot", "orderbook_snapshot"], by_id
    ok, snaps = by_id[0], by_id[1:]
    before = [f["seq"] for f in frames[: frames.index(ok)] if f["type"] in SEQUENCED and f["sid"] == 1]
    assert ok["seq"] == before[-1] + (1 if ok_consumes_seq else 0)
    assert [s["seq"] for s in snaps] == [ok["seq"] + 1, ok["seq"] + 2]
    assert all(s["id"] == ids["snapshot"] for s in snaps)
    assert not [f for f in frames if f["type"] == "orderbook_snapshot" and "id" in f and f not in snaps]

    (refused,) = [f for f in frames if f.get("id") == ids["refused"]]
    assert refused["type"] == "error" and refused["sid"] == 1 and refused["msg"]["code"] == 11
    assert isinstance(refused["seq"], int)
    (unknown,) = [f for f in frames if f.get("id") == ids["unknown_market"]]
    assert unknown["msg"]["code"] == 11 and unknown["msg"]["market_tickers"] == ["KXNOPE-1"]
    (terminal,) = [f for f in frames if f["type"] == "error" and f["msg"]["code"] == 25]
    assert terminal["sid"] == 3 and terminal["seq"] == last_seq[3]  # names its last seq, takes none


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


def test_fee_changes_and_historical_cutoff_validate(openapi: Spec) -> None:
    """The 3.31 endpoints the market-data path reads beside the catalog: fee schedules, cutoff."""

    async def fetch() -> tuple[dict[str, Any], dict[str, Any]]:
        out: dict[str, Any] = {}
        async with running_sim(markets=20, rate=50.0, lifecycle_every=5) as sim:
            sim.pause()
            sim.step(800)  # deterministic: lifecycle actions change event fees
            overrides = {
                t: (e.fee_type_override, e.fee_multiplier_override) for t, e in sim.public.events.items()
            }
            async with aiohttp.ClientSession() as http:
                for path in ("/events/fee_changes?limit=3", "/series/fee_changes", "/historical/cutoff"):
                    async with http.get(sim.rest_url + path) as r:
                        assert r.status == 200, (path, await r.text())
                        out[path] = await r.json()
                pages, cursor = [], ""
                while True:
                    async with http.get(f"{sim.rest_url}/events/fee_changes?limit=3&cursor={cursor}") as r:
                        pages.append(await r.json())
                    cursor = pages[-1]["cursor"]
                    if not cursor:
                        break
                out["pages"] = pages
        return out, overrides

    out, overrides = asyncio.run(fetch())
    openapi.validate(out["/series/fee_changes"], "GetSeriesFeeChangesResponse")
    openapi.validate(out["/historical/cutoff"], "GetHistoricalCutoffResponse")
    for page in out["pages"]:
        openapi.validate(page, "GetEventFeeChangesResponse")
    changes = [c for page in out["pages"] for c in page["event_fee_changes"]]
    assert len(out["pages"]) > 1 and changes, "fee changes happened and page"
    assert len({c["id"] for c in changes}) == len(changes)
    last = {c["event_ticker"]: (c["fee_type_override"], c["fee_multiplier_override"]) for c in changes}
    assert all(overrides[t] == v for t, v in last.items())  # the newest change is the event's state


def test_candlesticks_validate_and_add_up_to_the_market(openapi: Spec) -> None:
    async def fetch() -> tuple[dict[str, Any], dict[str, Any]]:
        out: dict[str, Any] = {}
        async with running_sim(markets=20, rate=50.0, lifecycle_every=10_000) as sim:
            sim.pause()
            start_volume = {t: m.volume for t, m in sim.public.markets.items()}  # the listing's history
            sim.step(1500)
            by_volume = sorted(sim.public.markets.values(), key=lambda m: start_volume[m.d.ticker] - m.volume)
            t, t2 = by_volume[0].d.ticker, by_volume[1].d.ticker
            series = sim.public.events[by_volume[0].d.event_ticker].d.series_ticker
            now = int(time.time())
            window = f"start_ts={now - 3600}&end_ts={now + 3600}"
            paths = {
                "minutes": f"/series/{series}/markets/{t}/candlesticks?{window}&period_interval=1",
                # A day candle ends at the next midnight UTC: the window must reach it.
                "day": f"/series/{series}/markets/{t}/candlesticks?start_ts={now - 3600}"
                f"&end_ts={now + 86_400}&period_interval=1440",
                "batch": f"/markets/candlesticks?market_tickers={t},{t2}&{window}&period_interval=60",
                "carried": f"/series/{series}/markets/{t}/candlesticks?start_ts={now + 7200}"
                f"&end_ts={now + 9000}&period_interval=60&include_latest_before_start=true",
                "market": f"/markets/{t}",
            }
            async with aiohttp.ClientSession() as http:
                for name, path in paths.items():
                    async with http.get(sim.rest_url + path) as r:
                        assert r.status == 200, (path, await r.text())
                        out[name] = await r.json()
                async with http.get(sim.rest_url + f"/series/NOPE/markets/{t}/candlesticks?{window}") as r:
                    out["wrong_series"] = r.status
                async with http.get(sim.rest_url + f"/series/{series}/markets/{t}/candlesticks") as r:
                    out["no_window"] = r.status
        return out, {"ticker": t, "traded": by_volume[0].volume - start_volume[t]}

    out, facts = asyncio.run(fetch())
    for name in ("minutes", "day", "carried"):
        openapi.validate(out[name], "GetMarketCandlesticksResponse")
    openapi.validate(out["batch"], "BatchGetMarketCandlesticksResponse")
    market = out["market"]["market"]
    minutes = out["minutes"]["candlesticks"]
    assert minutes and out["minutes"]["ticker"] == facts["ticker"]
    total = sum(parse_count(c["volume_fp"]) for c in minutes)
    assert total == facts["traded"] > 0  # every trade since the start is in some minute
    (day,) = out["day"]["candlesticks"]
    assert parse_count(day["volume_fp"]) == total
    last = market["last_price_dollars"]
    assert day["price"]["close_dollars"] == minutes[-1]["price"]["close_dollars"] == last
    assert out["batch"]["markets"][0]["market_ticker"] == facts["ticker"]
    (carried,) = out["carried"]["candlesticks"]
    assert carried["price"]["close_dollars"] is None
    assert carried["price"]["previous_dollars"] == market["last_price_dollars"]
    assert (out["wrong_series"], out["no_window"]) == (404, 400)


@pytest.mark.parametrize("after_s", [0.0, 0.001], ids=["no-cutoff", "cutoff"])
def test_historical_trades_validate_and_split_at_the_cutoff(openapi: Spec, after_s: float) -> None:
    async def fetch() -> tuple[list[Any], list[Any], dict[str, Any], int]:
        async with running_sim(markets=20, rate=50.0, historical_trades_after_s=after_s) as sim:
            sim.pause()
            sim.step(600)
            await asyncio.sleep(0.01)  # every trade is now older than a 1 ms cutoff
            pages: dict[str, list[Any]] = {"/markets/trades": [], "/historical/trades": []}
            async with aiohttp.ClientSession() as http:
                for path, bodies in pages.items():
                    cursor = ""
                    while True:
                        async with http.get(f"{sim.rest_url}{path}?limit=25&cursor={cursor}") as r:
                            assert r.status == 200, (path, await r.text())
                            bodies.append(await r.json())
                        cursor = bodies[-1]["cursor"]
                        if not cursor:
                            break
                async with http.get(sim.rest_url + "/historical/cutoff") as r:
                    cutoff = await r.json()
            return pages["/markets/trades"], pages["/historical/trades"], cutoff, sim.public.trades_total

    live, historical, cutoff, total = asyncio.run(fetch())
    openapi.validate(cutoff, "GetHistoricalCutoffResponse")
    for body in live + historical:
        openapi.validate(body, "GetTradesResponse")
    n_live = sum(len(b["trades"]) for b in live)
    n_historical = sum(len(b["trades"]) for b in historical)
    assert total > 0
    assert (n_live, n_historical) == ((total, 0) if after_s == 0 else (0, total))
    if after_s:
        assert len(historical) > 1  # pages


def test_event_live_data_validates_and_charts_the_events_trades(openapi: Spec) -> None:
    async def fetch() -> tuple[dict[str, Any], dict[str, list[tuple[int, str]]], dict[str, int]]:
        out: dict[str, Any] = {}
        async with running_sim(markets=20, rate=50.0, lifecycle_every=10_000) as sim:
            sim.pause()
            sim.step(1500)
            state = sim.public
            ev = next(e for e in state.events.values() if any(t.ticker in {m.ticker for m in e.d.markets}
                                                              for t in state.trades))  # fmt: skip
            event = ev.d.event_ticker
            want: dict[str, list[tuple[int, str]]] = {m.ticker: [] for m in ev.d.markets}
            for t in state.trades:
                if t.ticker in want:
                    want[t.ticker].append((t.ts_ms // 1000, format_price(t.yes_price)))
            statuses: dict[str, int] = {}
            async with aiohttp.ClientSession() as http:
                for name, path in {"default": f"/live_data/events/{event}",
                                   "15min": f"/live_data/events/{event}?range=15min"}.items():  # fmt: skip
                    async with http.get(sim.rest_url + path) as r:
                        assert r.status == 200, (path, await r.text())
                        out[name] = await r.json()
                for name, path in {"unknown": "/live_data/events/NOPE-1",
                                   "bad_range": f"/live_data/events/{event}?range=7y"}.items():  # fmt: skip
                    async with http.get(sim.rest_url + path) as r:
                        statuses[name] = r.status
        return out, want, statuses

    out, want, statuses = asyncio.run(fetch())
    for body in out.values():
        openapi.validate(body, "GetEventLiveDataResponse")
    live = out["default"]["live_data"]
    assert live["type"] == "market_price_chart" and live["default_range"] in live["range_options"]
    got = {
        m["ticker"]: [(p["ts"], p["yes_price_dollars"]) for p in m["points"]]
        for m in live["details"]["markets"]
    }
    assert got == want and any(got.values()), "every trade of the event's markets, oldest first"
    assert statuses == {"unknown": 404, "bad_range": 400}
