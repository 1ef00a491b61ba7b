"""History routes, from the database: snapshots, trades, deltas (:mod:`shared.store.history`,
the range queries ``kxfeed db history`` uses), signals, and a market's gaps with each one's
recovery (:func:`shared.store.queries.gap_report`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from shared.store import history
from shared.store import queries as store_queries

from . import queries, rows
from .app import API, Deps, Handler, db, json_response
from .errors import bad_param, not_found
from .params import Params, encode_cursor, ticker, time_range

#: The most missing sequence numbers listed one by one in a gaps answer (the count is exact).
MAX_LISTED_GAPS = 10_000
_RANGE_PARAMS = ("since", "until", "limit", "cursor")


async def known_ticker(deps: Deps, request: web.Request) -> str:
    """The path's ticker, checked: 400 when it is not a ticker at all, 404 when unknown."""
    t = ticker(request.match_info["ticker"])
    # A market live on the bus is known without asking the database (the live book route's
    # every request would otherwise wait for it).
    if deps.live is not None and t in deps.live:
        return t
    if await db(deps, queries.known(deps.engine, t)):
        return t
    raise not_found(f"unknown market {t!r}")


def _limit(deps: Deps, q: Params) -> int:
    return q.integer("limit", min(deps.cfg.page_limit, deps.cfg.max_page_limit), 1, deps.cfg.max_page_limit)


def _history_route(deps: Deps, kind: history.KindName, convert: Callable[[dict[str, Any]], Any]) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        q = Params(request.query, _RANGE_PARAMS)
        since, until = time_range(q)
        limit = min(_limit(deps, q), history.MAX_PAGE)
        cursor = q.text("cursor", 1024)
        t = await known_ticker(deps, request)
        query = history.Query(kind, ticker=t, since=since, until=until)
        try:
            page = await db(deps, history.page(deps.engine, query, after=cursor, limit=limit))
        except history.BadCursor:
            raise bad_param("cursor", "not a cursor this route gave (use next_cursor as it is)") from None
        return json_response(
            {"ticker": t, kind: [convert(r) for r in page.dicts()], "next_cursor": page.cursor}
        )

    return handler


def _signals(deps: Deps) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        q = Params(request.query, ("ticker", "strategy", *_RANGE_PARAMS))
        since, until = time_range(q)
        limit = _limit(deps, q)
        after = q.cursor("cursor", queries.SIGNAL_CURSOR)
        t = q.ticker("ticker")
        strategy = q.text("strategy", 64)
        page = await db(
            deps, queries.signals_page(deps.engine, t, strategy, queries.Range(since, until, after, limit))
        )
        nxt = encode_cursor(page.next_key) if page.next_key is not None else None
        return json_response({"signals": [rows.signal(r) for r in page.rows], "next_cursor": nxt})

    return handler


def gaps_body(report: store_queries.GapReport) -> dict[str, Any]:
    """The gaps answer: the missing sequence numbers (the shape kxfeed's predecessors served),
    the holes they form per subscription, and each gap the connector recorded with its recovery."""
    missing: list[int] = []
    holes = []
    for s in report.subscriptions:
        for a, b in s.holes:
            holes.append({"conn": str(s.conn), "sid": s.sid, "first": a, "last": b, "count": b - a + 1})
            if len(missing) < MAX_LISTED_GAPS:
                missing.extend(range(a, min(b, a + MAX_LISTED_GAPS - len(missing) - 1) + 1))
    recorded: dict[tuple[int, int, int], dict[str, Any]] = {}
    for e in report.events:
        g = recorded.setdefault(
            (e.conn, e.sid, e.expected),
            {
                "conn": str(e.conn), "sid": e.sid, "expected": e.expected, "received": e.received,
                "reason": e.reason, "status": "open", "detected": None, "recovered": None,
                "method": None,
            },
        )  # fmt: skip
        if e.status == "recovered":
            g.update(status="recovered", recovered=rows.iso(e.ts), method=e.method or None)
        else:
            g.update(detected=rows.iso(e.ts), received=e.received, reason=e.reason)
    total = report.missing
    return {
        "ticker": report.ticker,
        "gaps": missing,
        "gap_count": total,
        "has_gaps": total > 0,
        "gaps_truncated": total > len(missing),
        "holes": holes,
        "subscriptions": [
            {
                "conn": str(s.conn),
                "sid": s.sid,
                "first_seq": s.first_seq,
                "last_seq": s.last_seq,
                "stored": s.stored,
                "missing": s.missing,
            }
            for s in report.subscriptions
        ],
        "recorded": list(recorded.values()),
    }


def _gaps(deps: Deps) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        Params(request.query, ())
        t = await known_ticker(deps, request)
        report = await db(deps, store_queries.gap_report(deps.engine, t))
        return json_response(gaps_body(report))

    return handler


def routes(deps: Deps) -> list[tuple[str, Handler]]:
    m = f"{API}/markets/{{ticker}}"
    return [
        (f"{m}/snapshots", _history_route(deps, "snapshots", rows.snapshot)),
        (f"{m}/trades", _history_route(deps, "trades", rows.trade)),
        (f"{m}/deltas", _history_route(deps, "deltas", rows.delta)),
        (f"{m}/gaps", _gaps(deps)),
        (f"{API}/signals", _signals(deps)),
    ]
