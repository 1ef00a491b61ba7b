"""REST fee schedules and the historical cutoff: ``/series/fee_changes``, ``/events/fee_changes``,
``/historical/cutoff`` (OpenAPI 3.31).

The simulator applies fee overrides the moment it announces them, so a change's
``scheduled_ts`` is when it took effect, and series fees never change. It keeps
no archive apart from the live data: the cutoff is the oldest moment its live
endpoints still answer for (markets never leave the live set; trades do, when
the kept window fills).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from services.exchange_sim.rest import API, BadRestQuery, _bool, _page, _sim, bad_request
from services.exchange_sim.rest_json import iso
from services.exchange_sim.state import FeeChange


def fee_change_json(c: FeeChange) -> dict[str, Any]:
    return {
        "id": c.id,
        "event_ticker": c.event_ticker,
        "series_ticker": c.series_ticker,
        "fee_type_override": c.fee_type,
        "fee_multiplier_override": c.fee_multiplier,
        "scheduled_ts": iso(c.ts_ms),
    }


async def get_event_fee_changes(request: web.Request) -> web.Response:
    q = request.query
    changes = list(_sim(request).public.fee_changes)
    if q.get("event_ticker"):
        changes = [c for c in changes if c.event_ticker == q["event_ticker"]]
    try:
        page, cursor = _page(changes, q, 100, 1000)
    except BadRestQuery as exc:
        return bad_request(str(exc))
    return web.json_response({"event_fee_changes": [fee_change_json(c) for c in page], "cursor": cursor})


async def get_series_fee_changes(request: web.Request) -> web.Response:
    _bool(request.query, "show_historical")  # accepted; there is nothing to show either way
    return web.json_response({"series_fee_change_arr": []})


async def get_historical_cutoff(request: web.Request) -> web.Response:
    state = _sim(request).public
    start = min((m.d.created_ms for m in state.markets.values()), default=0)
    # Trades older than the oldest one kept are no longer served by /markets/trades.
    dropped = state.trades_total > len(state.trades)
    trades = state.trades[0].ts_ms if dropped and state.trades else start
    return web.json_response(
        {
            "market_settled_ts": iso(start),
            "trades_created_ts": iso(trades),
            "orders_updated_ts": iso(start),
            "market_positions_last_updated_ts": iso(start),
        }
    )


def add_routes(app: web.Application) -> None:
    """Register before :func:`services.exchange_sim.rest.add_routes`: these static paths would
    otherwise be taken by ``/events/{event_ticker}`` and ``/series/{series_ticker}``."""
    app.router.add_get(f"{API}/events/fee_changes", get_event_fee_changes)
    app.router.add_get(f"{API}/series/fee_changes", get_series_fee_changes)
    app.router.add_get(f"{API}/historical/cutoff", get_historical_cutoff)
