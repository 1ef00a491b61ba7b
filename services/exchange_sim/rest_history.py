"""REST fee schedules and the historical section: ``/series/fee_changes``, ``/events/fee_changes``,
``/historical/cutoff``, ``/historical/trades`` (OpenAPI 3.31).

The simulator applies fee overrides the moment it announces them, so a change's
``scheduled_ts`` is when it took effect, and series fees never change. It keeps
no archive apart from the live data. Markets never leave the live set. Trades
move to ``/historical/trades`` once older than ``[sim] historical_trades_after_s``
(while the simulator still keeps them); with that at 0 the cutoff is the oldest
trade ``/markets/trades`` still serves, and the historical endpoint lists none.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from services.exchange_sim.rest import (
    API,
    BadRestQuery,
    _bool,
    _page,
    _sim,
    bad_request,
    trades_cutoff_ms,
    trades_page,
)
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
    sim = _sim(request)
    state = sim.public
    start = min((m.d.created_ms for m in state.markets.values()), default=0)
    trades = trades_cutoff_ms(sim)
    if trades is None:
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


async def get_historical_trades(request: web.Request) -> web.Response:
    """Kept trades older than the cutoff (none when ``historical_trades_after_s`` is 0: the
    simulator has no older archive than what /markets/trades serves)."""
    sim = _sim(request)
    cutoff = trades_cutoff_ms(sim)
    if cutoff is None:
        return web.json_response({"trades": [], "cursor": ""})
    return trades_page(sim, request.query, before_ms=cutoff)


def add_routes(app: web.Application) -> None:
    """Register before :func:`services.exchange_sim.rest.add_routes`: these static paths would
    otherwise be taken by ``/events/{event_ticker}`` and ``/series/{series_ticker}``."""
    app.router.add_get(f"{API}/events/fee_changes", get_event_fee_changes)
    app.router.add_get(f"{API}/series/fee_changes", get_series_fee_changes)
    app.router.add_get(f"{API}/historical/cutoff", get_historical_cutoff)
    app.router.add_get(f"{API}/historical/trades", get_historical_trades)
