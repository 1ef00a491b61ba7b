"""REST market data (``/trade-api/v2``): markets, orderbooks, events, series, trades, exchange.

A middleware applies, in order: injected faults (5xx, 429), optional signed
auth (verified when the headers are present; required when
``rest_require_auth``), and Kalshi's token-bucket limits per caller.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from services.exchange_sim import metrics
from services.exchange_sim.app_key import SIM_KEY, ServedSim
from services.exchange_sim.emission import TradeRec
from services.exchange_sim.ratelimit import TOO_MANY
from services.exchange_sim.rest_json import (
    STATUS_FILTER,
    event_json,
    market_json,
    orderbook_json,
    series_json,
    trade_json,
)
from services.exchange_sim.state import MarketState

API = "/trade-api/v2"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error(status: int, code: str, message: str, details: str = "") -> web.Response:
    return web.json_response({"code": code, "message": message, "details": details}, status=status)


def bad_request(message: str) -> web.Response:
    return error(400, "bad_request", message)


@web.middleware
async def rest_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(API + "/"):
        return await handler(request)
    sim: ServedSim = request.app[SIM_KEY]
    now = time.monotonic()
    resp: web.StreamResponse | None = None
    if sim.plan.http_fires("rest5xx", now):
        sim.burst.event("rest5xx", "REST answered 5xx (injected fault)")
        resp = error(sim.plan.http["rest5xx"].status, "internal_server_error", "internal server error")
    elif sim.plan.http_fires("rate429", now):
        sim.burst.event("rate429", "REST answered 429 (injected fault)")
        resp = web.json_response(TOO_MANY, status=429)
    else:
        caller = request.remote or ""
        if sim.keyring.signed(request.headers) or sim.cfg.rest_require_auth:
            reason = sim.keyring.check(request.headers, request.method, request.path, int(time.time() * 1000))
            if reason is not None:
                metrics.AUTH_REJECTED.labels(reason).inc()
                sim.burst.event(f"rest-auth-{reason}", "REST request refused", reason=reason)
                resp = error(401, "authentication_error", "authentication failed", reason)
            else:
                caller = "key:" + sim.keyring.key_of(request.headers)
        if resp is None and not sim.buckets.take(caller, now):
            metrics.RATE_LIMITED.inc()
            # The bucket key may hold a key id: never log it.
            sim.burst.event("ratelimit", "REST rate limit hit", signed=caller.startswith("key:"))
            resp = web.json_response(TOO_MANY, status=429)
    if resp is None:
        try:
            resp = await handler(request)
        except web.HTTPException as exc:
            metrics.REST_REQUESTS.labels(str(exc.status)).inc()
            raise
    metrics.REST_REQUESTS.labels(str(resp.status)).inc()
    return resp


# ---- query helpers ----------------------------------------------------------------------------
class BadRestQuery(Exception):
    pass


def _int(q: Any, name: str, default: int, lo: int, hi: int) -> int:
    raw = q.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRestQuery(f"{name} must be an integer") from None
    if not lo <= value <= hi:
        raise BadRestQuery(f"{name} must be between {lo} and {hi}")
    return value


def _bool(q: Any, name: str) -> bool:
    return str(q.get(name, "")).lower() in ("1", "true", "yes")


def _cursor(raw: str | None) -> int:
    if not raw:
        return 0
    try:
        return int(base64.urlsafe_b64decode(raw.encode()).decode().removeprefix("o:"))
    except (ValueError, UnicodeDecodeError):
        raise BadRestQuery("invalid cursor") from None


def _next_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode()


def _page(items: list[Any], q: Any, default_limit: int, max_limit: int) -> tuple[list[Any], str]:
    limit = _int(q, "limit", default_limit, 0, max_limit) or default_limit
    start = _cursor(q.get("cursor"))
    page = items[start : start + limit]
    end = start + len(page)
    return page, _next_cursor(end) if end < len(items) else ""


def _tickers(q: Any) -> list[str]:
    out: list[str] = []
    for raw in q.getall("tickers", []):
        out.extend(t.strip() for t in raw.split(",") if t.strip())
    return out


# ---- handlers ---------------------------------------------------------------------------------
def _sim(request: web.Request) -> ServedSim:
    return request.app[SIM_KEY]


def _filter_markets(sim: ServedSim, q: Any) -> list[MarketState]:
    state = sim.public
    markets = list(state.markets.values())
    status = q.get("status")
    if status:
        if status not in STATUS_FILTER or "," in status:
            raise BadRestQuery("status must be one of unopened, open, paused, closed, settled (one only)")
        allowed = STATUS_FILTER[status]
        markets = [m for m in markets if m.status in allowed]
    families = {
        "created": ("min_created_ts", "max_created_ts"),
        "close": ("min_close_ts", "max_close_ts"),
        "settled": ("min_settled_ts", "max_settled_ts"),
        "updated": ("min_updated_ts", "max_updated_ts"),  # max_updated_ts: 3.31
    }
    used = [f for f, names in families.items() if any(q.get(n) for n in names)]
    if len(used) > 1:
        raise BadRestQuery("timestamp filters from different families cannot be combined")
    compatible = {
        "created": {"unopened", "open"},
        "close": {"closed"},
        "settled": {"settled"},
        "updated": set(),
    }
    if used and status and status not in compatible[used[0]]:
        raise BadRestQuery(f"{used[0]} timestamp filters cannot be combined with status={status}")
    hi = 1 << 62
    if used:
        fam = used[0]
        lo_s = _int(q, families[fam][0], 0, 0, hi)
        hi_s = _int(q, families[fam][1], hi, 0, hi) if len(families[fam]) > 1 else hi

        def ts(m: MarketState) -> int | None:
            return {
                "created": m.d.created_ms,
                "close": m.close_ms,
                "settled": m.settled_ms,
                "updated": m.updated_ms,
            }[fam]

        markets = [m for m in markets if (t := ts(m)) is not None and lo_s <= t // 1000 <= hi_s]
    if q.get("event_ticker"):
        markets = [m for m in markets if m.d.event_ticker == q["event_ticker"]]
    if q.get("series_ticker"):
        events = state.events
        markets = [m for m in markets if events[m.d.event_ticker].d.series_ticker == q["series_ticker"]]
    tickers = _tickers(q)
    if tickers:
        wanted = set(tickers)
        markets = [m for m in markets if m.d.ticker in wanted]
    if q.get("mve_filter") == "only":
        markets = []  # the simulator lists no multivariate (combo) markets
    return markets


async def get_markets(request: web.Request) -> web.Response:
    try:
        markets = _filter_markets(_sim(request), request.query)
        page, cursor = _page(markets, request.query, 100, 1000)
    except BadRestQuery as exc:
        return bad_request(str(exc))
    return web.json_response({"markets": [market_json(m) for m in page], "cursor": cursor})


async def get_market(request: web.Request) -> web.Response:
    m = _sim(request).public.markets.get(request.match_info["ticker"])
    if m is None:
        return error(404, "not_found", "market not found")
    return web.json_response({"market": market_json(m)})


async def get_orderbook(request: web.Request) -> web.Response:
    m = _sim(request).public.markets.get(request.match_info["ticker"])
    if m is None:
        return error(404, "not_found", "market not found")
    try:
        depth = _int(request.query, "depth", 0, -(1 << 31), 100)
    except BadRestQuery as exc:
        return bad_request(str(exc))
    return web.json_response({"orderbook_fp": orderbook_json(m, max(0, depth))})


async def get_orderbooks(request: web.Request) -> web.Response:
    tickers = _tickers(request.query)
    if not 1 <= len(tickers) <= 100:
        return bad_request("tickers must list 1 to 100 markets")
    markets = _sim(request).public.markets
    missing = [t for t in tickers if t not in markets]
    if missing:
        return error(404, "not_found", "market not found", ",".join(missing))
    return web.json_response(
        {"orderbooks": [{"ticker": t, "orderbook_fp": orderbook_json(markets[t])} for t in tickers]}
    )


async def get_events(request: web.Request) -> web.Response:
    sim = _sim(request)
    state = sim.public
    q = request.query
    events = list(state.events.values())
    by_event: dict[str, list[MarketState]] = {}
    for m in state.markets.values():
        by_event.setdefault(m.d.event_ticker, []).append(m)
    try:
        status = q.get("status")
        if status:
            if status not in ("unopened", "open", "closed", "settled"):
                raise BadRestQuery("status must be one of unopened, open, closed, settled")
            allowed = STATUS_FILTER[status]
            events = [e for e in events if any(m.status in allowed for m in by_event[e.d.event_ticker])]
        if q.get("series_ticker"):
            events = [e for e in events if e.d.series_ticker == q["series_ticker"]]
        if q.get("min_close_ts"):
            lo = _int(q, "min_close_ts", 0, 0, 1 << 62)
            events = [e for e in events if any(m.close_ms // 1000 > lo for m in by_event[e.d.event_ticker])]
        if q.get("min_updated_ts"):
            lo = _int(q, "min_updated_ts", 0, 0, 1 << 62)
            events = [e for e in events if e.updated_ms // 1000 > lo]
        page, cursor = _page(events, q, 200, 200)
    except BadRestQuery as exc:
        return bad_request(str(exc))
    nested = _bool(q, "with_nested_markets")
    out = [
        event_json(e, state.series.get(e.d.series_ticker), by_event[e.d.event_ticker] if nested else None)
        for e in page
    ]
    return web.json_response({"events": out, "cursor": cursor})


async def get_event(request: web.Request) -> web.Response:
    state = _sim(request).public
    ev = state.events.get(request.match_info["event_ticker"])
    if ev is None:
        return error(404, "not_found", "event not found")
    markets = [state.markets[m.ticker] for m in ev.d.markets]
    nested = _bool(request.query, "with_nested_markets")
    body = event_json(ev, state.series.get(ev.d.series_ticker), markets if nested else None)
    return web.json_response({"event": body, "markets": [market_json(m) for m in markets]})


def _series_volume(sim: ServedSim, series: str) -> int:
    events = sim.public.events
    return sum(
        m.volume for m in sim.public.markets.values() if events[m.d.event_ticker].d.series_ticker == series
    )


async def get_series_list(request: web.Request) -> web.Response:
    sim = _sim(request)
    q = request.query
    series = list(sim.public.series.values())
    if q.get("category"):
        series = [s for s in series if s.category == q["category"]]
    if q.get("tags"):
        tags = {t.strip() for t in q["tags"].split(",")}
        series = [s for s in series if tags & set(s.tags)]
    vol = _bool(q, "include_volume")
    return web.json_response(
        {"series": [series_json(s, _series_volume(sim, s.ticker) if vol else None) for s in series]}
    )


async def get_series(request: web.Request) -> web.Response:
    sim = _sim(request)
    s = sim.public.series.get(request.match_info["series_ticker"])
    if s is None:
        return error(404, "not_found", "series not found")
    vol = _bool(request.query, "include_volume")
    return web.json_response({"series": series_json(s, _series_volume(sim, s.ticker) if vol else None)})


def trades_cutoff_ms(sim: ServedSim) -> int | None:
    """Kalshi's historical cutoff for trades: older ones are served by ``/historical/trades``
    only. None when ``historical_trades_after_s`` is 0 (every kept trade is live)."""
    after = sim.cfg.historical_trades_after_s
    return int(time.time() * 1000 - after * 1000) if after > 0 else None


async def get_trades(request: web.Request) -> web.Response:
    sim = _sim(request)
    return trades_page(sim, request.query, live_from_ms=trades_cutoff_ms(sim))


def trades_page(
    sim: ServedSim, q: Any, *, live_from_ms: int | None = None, before_ms: int | None = None
) -> web.Response:
    """A page of kept trades, newest first: at or after ``live_from_ms`` (the live endpoint
    past a cutoff), or before ``before_ms`` (the historical one)."""
    state = sim.public
    try:
        limit = _int(q, "limit", 100, 0, 1000) or 100
        # Cursor = absolute number of the next (older) trade, so new trades don't shift pages.
        top = _cursor(q.get("cursor")) if q.get("cursor") else state.trades_total - 1
        min_ts = _int(q, "min_ts", 0, 0, 1 << 62)
        max_ts = _int(q, "max_ts", 1 << 62, 0, 1 << 62)
    except BadRestQuery as exc:
        return bad_request(str(exc))
    ticker = q.get("ticker")
    block = _bool(q, "is_block_trade") if q.get("is_block_trade") else None
    base = state.trades_total - len(state.trades)
    page: list[TradeRec] = []
    n = min(top, state.trades_total - 1)
    while n >= base and len(page) < limit:
        t = state.trades[n - base]
        if live_from_ms is not None and t.ts_ms < live_from_ms:
            n = base - 1  # newest first: every older trade is past the cutoff too
            break
        n -= 1
        if (ticker and t.ticker != ticker) or (before_ms is not None and t.ts_ms >= before_ms):
            continue
        if not min_ts <= t.ts_ms // 1000 <= max_ts or (block is not None and t.is_block != block):
            continue
        page.append(t)
    cursor = _next_cursor(n) if n >= base and len(page) == limit else ""
    return web.json_response({"trades": [trade_json(t) for t in page], "cursor": cursor})


async def get_exchange_status(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "exchange_active": True,
            "trading_active": True,
            "intra_exchange_transfers_active": True,
            "exchange_estimated_resume_time": None,
            "exchange_index_statuses": [
                {
                    "exchange_index": i,
                    "description": d,
                    "exchange_active": True,
                    "trading_active": True,
                    "intra_exchange_transfers_active": True,
                }
                for i, d in enumerate(("default", "combos", "crypto", "tennis and baseball"))
            ],
        }
    )


async def get_exchange_schedule(request: web.Request) -> web.Response:
    day = [{"open_time": "00:00", "close_time": "23:59"}]
    week = {d: day for d in ("monday", "tuesday", "wednesday", "friday", "saturday", "sunday")}
    week["thursday"] = [
        {"open_time": "00:00", "close_time": "03:00"},
        {"open_time": "05:00", "close_time": "23:59"},
    ]
    return web.json_response(
        {
            "schedule": {
                "standard_hours": [
                    {"start_time": "2024-01-01T00:00:00Z", "end_time": "2099-12-31T23:59:59Z", **week}
                ],
                "maintenance_windows": [],
            }
        }
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get(f"{API}/markets", get_markets)
    app.router.add_get(f"{API}/markets/trades", get_trades)
    app.router.add_get(f"{API}/markets/orderbooks", get_orderbooks)
    app.router.add_get(f"{API}/markets/{{ticker}}", get_market)
    app.router.add_get(f"{API}/markets/{{ticker}}/orderbook", get_orderbook)
    app.router.add_get(f"{API}/events", get_events)
    app.router.add_get(f"{API}/events/{{event_ticker}}", get_event)
    app.router.add_get(f"{API}/series", get_series_list)
    app.router.add_get(f"{API}/series/{{series_ticker}}", get_series)
    app.router.add_get(f"{API}/exchange/status", get_exchange_status)
    app.router.add_get(f"{API}/exchange/schedule", get_exchange_schedule)
