"""REST market data and the Odds API over real HTTP: filters, pagination, limits, agreement with WS."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from shared.kalshi.auth import SIM_DEV_KEY_ID, auth_headers
from shared.units import ONE_DOLLAR, parse_count, parse_price
from tests.support.sim_client import BookClient, client_key, running_sim


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _get(http: aiohttp.ClientSession, url: str, **kw: Any) -> tuple[int, Any]:
    async with http.get(url, **kw) as r:
        return r.status, await r.json()


def test_markets_pagination_and_filters() -> None:
    async def go() -> None:
        async with (
            running_sim(markets=40, rate=1.0, rest_tier="prestige") as sim,
            aiohttp.ClientSession() as http,
        ):
            base = sim.rest_url
            seen: list[str] = []
            cursor = ""
            while True:
                status, body = await _get(http, f"{base}/markets?limit=7&cursor={cursor}")
                assert status == 200 and len(body["markets"]) <= 7
                seen += [m["ticker"] for m in body["markets"]]
                cursor = body["cursor"]
                if not cursor:
                    break
            assert seen == sim.tickers
            status, body = await _get(http, f"{base}/markets?limit=1001")
            assert status == 400
            status, body = await _get(http, f"{base}/markets?series_ticker=KXEPLGAME&status=open")
            assert body["markets"] and all(m["ticker"].startswith("KXEPLGAME-") for m in body["markets"])
            assert {m["status"] for m in body["markets"]} == {"active"}
            event = body["markets"][0]["event_ticker"]
            status, body = await _get(http, f"{base}/markets?event_ticker={event}")
            assert [m["ticker"] for m in body["markets"]] == [
                t for t in sim.tickers if t.startswith(event + "-")
            ]
            two = sim.tickers[3:5]
            status, body = await _get(http, f"{base}/markets?tickers={','.join(two)}")
            assert [m["ticker"] for m in body["markets"]] == two
            status, body = await _get(http, f"{base}/markets?status=open&min_close_ts=1")
            assert status == 400  # close-time filters don't pair with status=open
            status, body = await _get(http, f"{base}/series?category=Economics")
            assert body["series"] and {s["category"] for s in body["series"]} == {"Economics"}
            status, body = await _get(http, f"{base}/events?with_nested_markets=true&limit=200")
            nested = [m["ticker"] for e in body["events"] for m in e["markets"]]
            assert sorted(nested) == sorted(sim.tickers) and body["cursor"] == ""
            status, body = await _get(http, f"{base}/events/{event}")
            assert body["event"]["event_ticker"] == event and "markets" not in body["event"]
            assert len(body["markets"]) == 3

    run(go())


def test_rest_orderbook_and_market_agree_with_the_ws_book() -> None:
    async def go() -> None:
        async with running_sim(markets=8, rate=300.0) as sim, aiohttp.ClientSession() as http:
            t = sim.tickers[0]
            c = await BookClient(sim.ws_url).connect()
            await c.subscribe(["orderbook_delta"], [t])
            await asyncio.sleep(0.3)
            sim.pause()
            assert await sim.drained()
            await c.pump(quiet=0.2)
            yes, no = c.books[t]
            _status, body = await _get(http, f"{sim.rest_url}/markets/{t}/orderbook")
            ob = body["orderbook_fp"]
            assert {parse_price(p): parse_count(n) for p, n in ob["yes_dollars"]} == yes
            assert {parse_price(p): parse_count(n) for p, n in ob["no_dollars"]} == no
            _, body = await _get(http, f"{sim.rest_url}/markets/{t}/orderbook?depth=2")
            assert [parse_price(p) for p, _ in body["orderbook_fp"]["yes_dollars"]] == sorted(yes)[-2:]
            _, body = await _get(http, f"{sim.rest_url}/markets/{t}")
            m = body["market"]
            assert parse_price(m["yes_bid_dollars"]) == max(yes)
            assert parse_price(m["yes_ask_dollars"]) == ONE_DOLLAR - max(no)
            assert parse_price(m["no_bid_dollars"]) == max(no)
            assert parse_count(m["yes_ask_size_fp"]) == no[max(no)]
            _, body = await _get(
                http, f"{sim.rest_url}/markets/orderbooks?tickers={t}&tickers={sim.tickers[1]}"
            )
            assert [o["ticker"] for o in body["orderbooks"]] == [t, sim.tickers[1]]
            _, body = await _get(http, f"{sim.rest_url}/markets/trades?ticker={t}&limit=1000")
            assert all(tr["ticker"] == t for tr in body["trades"])
            await c.close()

    run(go())


def test_trades_pages_are_stable_while_trading_continues() -> None:
    async def go() -> None:
        async with (
            running_sim(markets=8, rate=2000.0, rest_tier="prestige") as sim,
            aiohttp.ClientSession() as http,
        ):
            await asyncio.sleep(0.4)
            ids: list[str] = []
            cursor = ""
            for _ in range(4):
                _, body = await _get(http, f"{sim.rest_url}/markets/trades?limit=25&cursor={cursor}")
                ids += [t["trade_id"] for t in body["trades"]]
                cursor = body["cursor"]
                await asyncio.sleep(0.05)  # new trades arrive between pages
            assert len(ids) == len(set(ids)) == 100  # no repeats, no holes from shifting pages

    run(go())


def test_token_bucket_429_and_signed_requests() -> None:
    async def go() -> None:
        async with running_sim(rate=1.0, rest_tier="basic") as sim, aiohttp.ClientSession() as http:
            url = f"{sim.rest_url}/exchange/status"
            # Basic: 200 tokens/s, 10 per request, 2 s of capacity = 40 requests in a burst. Sent
            # until refused: a slow (loaded) client gets refills on top, never fewer than 40.
            codes: list[int] = []
            body: Any = None
            while 429 not in codes and len(codes) < 2_000:
                code, body = await _get(http, url)
                codes.append(code)
            assert codes[-1] == 429 and set(codes[:-1]) == {200} and len(codes) > 40, codes
            assert body == {"error": "too many requests"}
            # A signed caller has its own bucket; a bad signature is refused.
            path = "/trade-api/v2/exchange/status"
            headers = auth_headers(SIM_DEV_KEY_ID, client_key(), "GET", path, int(time.time() * 1000))
            assert (await _get(http, url, headers=headers))[0] == 200
            bad = {**headers, "KALSHI-ACCESS-SIGNATURE": headers["KALSHI-ACCESS-SIGNATURE"][::-1]}
            assert (await _get(http, url, headers=bad))[0] == 401
        async with running_sim(rest_require_auth=True) as sim, aiohttp.ClientSession() as http:
            assert (await _get(http, f"{sim.rest_url}/markets"))[0] == 401
            path = "/trade-api/v2/markets"
            headers = auth_headers(SIM_DEV_KEY_ID, client_key(), "GET", path, int(time.time() * 1000))
            # The query string is not part of the signed path.
            assert (await _get(http, f"{sim.rest_url}/markets?limit=2", headers=headers))[0] == 200

    run(go())


def _implied(american: int) -> float:
    return 100 / (american + 100) if american > 0 else -american / (-american + 100)


def test_odds_api_h2h_from_fair_probabilities_with_vig() -> None:
    async def go() -> None:
        async with running_sim(markets=40, rate=1.0) as sim, aiohttp.ClientSession() as http:
            status, _ = await _get(http, f"{sim.odds_url}/sports/basketball_nba/odds")
            assert status == 401  # The Odds API needs an apiKey
            status, sports = await _get(http, f"{sim.odds_url}/sports?apiKey=k")
            assert "soccer_epl" in {s["key"] for s in sports}
            checked = 0
            for sport in ("basketball_nba", "americanfootball_nfl", "soccer_epl", "icehockey_nhl"):
                status, events = await _get(
                    http, f"{sim.odds_url}/sports/{sport}/odds?apiKey=k&regions=us&markets=h2h"
                )
                assert status == 200
                for ev in events:
                    model = next(
                        md
                        for md in sim.engine.sports_models()
                        if md.d.home == ev["home_team"] and md.d.away == ev["away_team"]
                    )
                    assert len(ev["bookmakers"]) >= 4
                    for book in ev["bookmakers"]:
                        outcomes = book["markets"][0]["outcomes"]
                        assert [o["name"] for o in outcomes] == list(model.d.outcomes)
                        implied = [_implied(o["price"]) for o in outcomes]
                        assert 1.01 < sum(implied) < 1.08  # each book carries a vig
                        for p, fair in zip(implied, model.fair, strict=True):
                            assert abs(p / sum(implied) - fair / ONE_DOLLAR) < 0.02
                    checked += 1
            assert checked >= 3

    run(go())


def test_key_ids_and_signatures_never_reach_the_log(caplog: Any) -> None:
    caplog.set_level("DEBUG")
    key_id = "SECRET-KEY-ID-4242"

    async def go() -> str:
        async with running_sim(rate=1.0, rest_tier="basic") as sim, aiohttp.ClientSession() as http:
            path = "/trade-api/v2/exchange/status"
            headers = auth_headers(key_id, client_key(), "GET", path, int(time.time() * 1000))
            for _ in range(45):  # unknown key: 401s
                await _get(http, f"{sim.rest_url}/exchange/status", headers=headers)
            good = auth_headers(SIM_DEV_KEY_ID, client_key(), "GET", path, int(time.time() * 1000))
            # Trusted key: its own bucket runs dry -> 429 (until one, however slow this client is).
            status, n = 0, 0
            while status != 429 and n < 2_000:
                status, n = (await _get(http, f"{sim.rest_url}/exchange/status", headers=good))[0], n + 1
            assert status == 429
            ws_bad = auth_headers(key_id, client_key(), "GET", "/trade-api/ws/v2", int(time.time() * 1000))
            async with http.get(sim.ws_url.replace("ws://", "http://"), headers=ws_bad) as r:
                assert r.status == 401
            sim.burst.flush()
            return headers["KALSHI-ACCESS-SIGNATURE"] + " " + good["KALSHI-ACCESS-SIGNATURE"]

    sigs = run(go())
    text = "\n".join(f"{r.getMessage()} {getattr(r, 'ctx', '')}" for r in caplog.records)
    assert "rate limit" in text and "refused" in text  # the events were logged...
    assert key_id not in text and SIM_DEV_KEY_ID not in text  # ...without the key ids
    for sig in sigs.split():
        assert sig[:40] not in text
