"""Market routes: the list (filters, keyset pages), one market, and its latest state.

The latest state is the newest of what the gateway saw on the bus (the orderbook's top of
book, :mod:`services.gateway.live`) and what the database holds (the book rebuilt from the
stored snapshot and deltas, ticker and poll rows: :func:`shared.store.queries.latest`).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from aiohttp import web

from shared.store import queries as store_queries
from shared.store.types import datetime_to_us

from . import queries, rows
from .api_history import known_ticker
from .app import API, Deps, Handler, db, json_response
from .errors import bad_param
from .params import Params, encode_cursor

#: A market status as Kalshi spells them (initialized, active, closed, determined, finalized...).
STATUS = re.compile(r"^[a-z_]{1,32}$")


_TOP_KEYS = ("yes_bid", "yes_bid_size_fp", "yes_ask", "yes_ask_size_fp")


def _top_from_db(top: store_queries.Top | None) -> dict[str, Any] | None:
    if top is None:
        return None
    return {
        "yes_bid": rows.price(top.yes_bid),
        "yes_bid_size_fp": rows.count(top.yes_bid_size),
        "yes_ask": rows.price(top.yes_ask),
        "yes_ask_size_fp": rows.count(top.yes_ask_size),
    }


def _trade_from_db(t: store_queries.LastTrade | None) -> dict[str, Any] | None:
    if t is None:
        return None
    return {
        "trade_id": t.trade_id,
        "yes_price": rows.price(t.yes_price),
        "no_price": rows.price(t.no_price),
        "count_fp": rows.count(t.count),
        "taker_side": t.taker_side,
        "ts": rows.iso(t.ts),
    }


def _ns(ts: datetime) -> int:
    return datetime_to_us(ts) * 1000


async def latest_body(deps: Deps, ticker: str) -> dict[str, Any]:
    stored = await db(deps, store_queries.latest(deps.engine, ticker))
    newest = stored.newest
    db_ns = _ns(newest.ts) if newest is not None else None
    live = deps.live.get("tob", ticker) if deps.live is not None else None
    trade = _trade_from_db(stored.trade)
    live_trade = deps.live.get("trade", ticker) if deps.live is not None else None
    if live_trade is not None and (stored.trade is None or live_trade.ts_ns > _ns(stored.trade.ts)):
        d = live_trade.data
        trade = {
            "trade_id": d["trade_id"], "yes_price": d["yes_price"], "no_price": d["no_price"],
            "count_fp": d["count_fp"], "taker_side": d["taker_side"], "ts": d["ts_recv"],
        }  # fmt: skip
    live_top = None if live is None else {k: live.data[k] for k in _TOP_KEYS}
    # The orderbook publishes a top only when it changes, while the stored book's time moves
    # with every delta: a stored top equal to the live one is the live one, not newer than it.
    book = next((x for x in stored.tops if x.source == "book"), None)
    if live is not None and (db_ns is None or live.ts_ns >= db_ns or live_top == _top_from_db(book)):
        d = live.data
        top = live_top
        return {
            "ticker": ticker,
            "source": "live",
            "valid": d["valid"],
            "seq": d["xseq"],
            "top": top,
            "mid": d["mid"],
            "spread": d["spread"],
            "ts": d["ts_recv"],
            "last_trade": trade,
        }
    if newest is None:
        return {
            "ticker": ticker, "source": None, "valid": None, "seq": None, "top": None, "mid": None,
            "spread": None, "ts": None, "last_trade": trade,
        }  # fmt: skip
    top = _top_from_db(newest)
    spread = mid = None
    if newest.yes_bid is not None and newest.yes_ask is not None:
        spread = rows.price(newest.yes_ask - newest.yes_bid)
        mid = rows.mid(newest.yes_bid + newest.yes_ask)
    return {
        "ticker": ticker,
        "source": f"database:{newest.source}",
        "valid": None,
        "seq": None,
        "top": top,
        "mid": mid,
        "spread": spread,
        "ts": rows.iso(newest.ts),
        "last_trade": trade,
    }


def _list(deps: Deps) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        q = Params(request.query, ("series", "event", "status", "q", "limit", "cursor"))
        series, event = q.ticker("series"), q.ticker("event")
        status = q.text("status", 32)
        if status is not None and not STATUS.match(status):
            raise bad_param("status", "a market status (lower-case letters and '_') is expected")
        text = q.text("q", 100)
        limit = q.integer(
            "limit", min(deps.cfg.page_limit, deps.cfg.max_page_limit), 1, deps.cfg.max_page_limit
        )
        after = q.cursor("cursor", (str,))
        page = await db(
            deps,
            queries.markets_page(
                deps.engine, series=series, event=event, status=status, q=text,
                after=after[0] if after else None, limit=limit,
            ),
        )  # fmt: skip
        nxt = encode_cursor(page.next_key) if page.next_key is not None else None
        return json_response({"markets": [rows.market(r) for r in page.rows], "next_cursor": nxt})

    return handler


def _one(deps: Deps) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        Params(request.query, ())
        t = await known_ticker(deps, request)
        row = await db(deps, queries.market(deps.engine, t))
        body = {"ticker": t, "market": rows.market(row) if row is not None else None}
        body["latest"] = await latest_body(deps, t)
        return json_response(body)

    return handler


def _latest(deps: Deps) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        Params(request.query, ())
        t = await known_ticker(deps, request)
        return json_response(await latest_body(deps, t))

    return handler


def routes(deps: Deps) -> list[tuple[str, Handler]]:
    return [
        (f"{API}/markets", _list(deps)),
        (f"{API}/markets/{{ticker}}", _one(deps)),
        (f"{API}/markets/{{ticker}}/latest", _latest(deps)),
    ]
