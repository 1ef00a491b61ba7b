"""REST live data: ``/live_data/events/{event_ticker}`` (OpenAPI 3.31, ``GetEventLiveData``).

Kalshi serves event-keyed live data (crypto price charts, commodity timeseries, weather
observations) whose ``type`` names the shape of ``details``. The simulator has no outside
world to observe, so every event's live data is the chart it can tell the truth about: type
``market_price_chart``, each market of the event with the yes price of its kept trades, oldest
first, over the requested ``range`` ending at the newest trade the simulator made.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from services.exchange_sim.rest import API, _sim, bad_request, error
from shared.units import format_price

#: The chart ranges offered, in seconds; ``range`` must be one of them.
RANGES = {"15min": 900, "1h": 3_600, "1d": 86_400}
DEFAULT_RANGE = "1h"
#: Points per market, newest kept: a chart, not an export (``/markets/trades`` pages the rest).
MAX_POINTS = 1_000


async def get_event_live_data(request: web.Request) -> web.Response:
    state = _sim(request).public
    ev = state.events.get(request.match_info["event_ticker"])
    if ev is None:
        return error(404, "not_found", "live data not found")
    window = request.query.get("range", DEFAULT_RANGE)
    if window not in RANGES:
        return bad_request(f"range must be one of {', '.join(RANGES)}")
    tickers = [m.ticker for m in ev.d.markets]
    wanted = set(tickers)
    end_ms = state.trades[-1].ts_ms if state.trades else 0
    since_ms = end_ms - RANGES[window] * 1000
    points: dict[str, list[dict[str, Any]]] = {t: [] for t in tickers}
    for t in state.trades:
        if t.ticker in wanted and t.ts_ms >= since_ms:
            points[t.ticker].append({"ts": t.ts_ms // 1000, "yes_price_dollars": format_price(t.yes_price)})
    details = {
        "event_ticker": ev.d.event_ticker,
        "markets": [{"ticker": t, "points": points[t][-MAX_POINTS:]} for t in tickers],
    }
    live = {
        "type": "market_price_chart",
        "details": details,
        "default_range": DEFAULT_RANGE,
        "range_options": list(RANGES),
    }
    return web.json_response({"live_data": live})


def add_routes(app: web.Application) -> None:
    app.router.add_get(f"{API}/live_data/events/{{event_ticker}}", get_event_live_data)
