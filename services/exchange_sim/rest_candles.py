"""REST candlesticks (OpenAPI 3.31): ``GET /series/{series_ticker}/markets/{ticker}/candlesticks``
and the batch ``GET /markets/candlesticks``, from the public state's minute candles."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from services.exchange_sim.candles import MarketCandles
from services.exchange_sim.rest import API, BadRestQuery, _bool, _int, _sim, bad_request, error

#: Periods the single-market endpoint takes (minutes); the batch endpoint takes any >= 1.
PERIODS = (1, 60, 1440)
MAX_BATCH_MARKETS = 100
MAX_BATCH_CANDLES = 10_000
_TS_MAX = 1 << 40


def _window(q: Any, single: bool) -> tuple[int, int, int, bool]:
    for name in ("start_ts", "end_ts", "period_interval"):
        if not q.get(name):
            raise BadRestQuery(f"{name} is required")
    start = _int(q, "start_ts", 0, 0, _TS_MAX)
    end = _int(q, "end_ts", 0, 0, _TS_MAX)
    period = _int(q, "period_interval", 1, 1, 100_000)
    if single and period not in PERIODS:
        raise BadRestQuery("period_interval must be 1, 60 or 1440")
    if end < start:
        raise BadRestQuery("end_ts must not be before start_ts")
    return start, end, period, _bool(q, "include_latest_before_start")


def _candles(request: web.Request, ticker: str) -> MarketCandles:
    return _sim(request).public.candles.get(ticker) or MarketCandles()


async def get_market_candlesticks(request: web.Request) -> web.Response:
    state = _sim(request).public
    ticker = request.match_info["ticker"]
    m = state.markets.get(ticker)
    if m is None or state.events[m.d.event_ticker].d.series_ticker != request.match_info["series_ticker"]:
        return error(404, "not_found", "market not found")
    try:
        start, end, period, before = _window(request.query, single=True)
    except BadRestQuery as exc:
        return bad_request(str(exc))
    sticks = _candles(request, ticker).periods(start, end, period, before)
    return web.json_response({"ticker": ticker, "candlesticks": sticks})


async def batch_market_candlesticks(request: web.Request) -> web.Response:
    q = request.query
    tickers = list(dict.fromkeys(t.strip() for t in q.get("market_tickers", "").split(",") if t.strip()))
    if not 1 <= len(tickers) <= MAX_BATCH_MARKETS:
        return bad_request(f"market_tickers must list 1 to {MAX_BATCH_MARKETS} markets")
    missing = [t for t in tickers if t not in _sim(request).public.markets]
    if missing:
        return error(404, "not_found", "market not found", ",".join(missing))
    try:
        start, end, period, before = _window(q, single=False)
    except BadRestQuery as exc:
        return bad_request(str(exc))
    out, room = [], MAX_BATCH_CANDLES
    for t in tickers:
        sticks = _candles(request, t).periods(start, end, period, before)[:room]
        room -= len(sticks)
        out.append({"market_ticker": t, "candlesticks": sticks})
    return web.json_response({"markets": out})


def add_routes(app: web.Application) -> None:
    """Register before :func:`services.exchange_sim.rest.add_routes` (``/markets/{ticker}``)."""
    app.router.add_get(f"{API}/markets/candlesticks", batch_market_candlesticks)
    app.router.add_get(
        f"{API}/series/{{series_ticker}}/markets/{{ticker}}/candlesticks", get_market_candlesticks
    )
