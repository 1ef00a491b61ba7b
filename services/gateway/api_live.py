"""Live routes: one book, the scans (asked of the orderbook's control socket, asynchronously),
the supervisor's status, and the probes (healthz, readyz).

The orderbook answers in its own integer units; these routes turn them into the API's
(prices "0.4300", counts "25.00", mids with one more decimal, ages in integer milliseconds).
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import datetime
from typing import Any

from aiohttp import web

from shared.book.at import book_at
from shared.commands.base import Command
from shared.commands.book import Book
from shared.commands.movers import Movers
from shared.commands.ping import Ping
from shared.commands.spreads import Spreads
from shared.commands.stale import Stale
from shared.commands.status import Status
from shared.control import ControlError, arequest

from . import queries, rows
from .api_history import known_ticker
from .app import API, Deps, Handler, db, json_response
from .coalesce import Coalescer
from .errors import ApiError, not_found, timeout, unavailable
from .params import Params

MAX_SCAN_ROWS = 1000
MAX_DEPTH = 1000


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)


async def ask(deps: Deps, endpoint: str, who: str, cmd: Command) -> Any:
    """``cmd`` to a worker's control socket within the configured time (never blocking the loop)."""
    try:
        return await arequest(endpoint, cmd, timeout_s=deps.cfg.control_timeout_s)
    except ControlError as exc:
        text = str(exc)
        if "no answer" in text:
            raise timeout(f"the {who} did not answer within {deps.cfg.control_timeout_s} s") from None
        if "no book for" in text:
            raise not_found(
                f"the orderbook holds no book for this market{' (closed)' if 'closed' in text else ''}"
            ) from None
        raise unavailable(f"the {who} refused: {text.rsplit(': ', 1)[-1][:200]}") from None


def _top(t: dict[str, Any] | None) -> dict[str, Any] | None:
    if t is None:
        return None
    return {
        "yes_bid": rows.price(t["yes_bid"]),
        "yes_bid_size_fp": rows.count(t["yes_bid_size"]),
        "yes_ask": rows.price(t["yes_ask"]),
        "yes_ask_size_fp": rows.count(t["yes_ask_size"]),
        "no_bid": rows.price(t["no_bid"]),
        "no_ask": rows.price(t["no_ask"]),
        "mid": rows.mid(t["mid_x2"]),
        "spread": rows.price(t["spread"]),
    }


def book_body(b: dict[str, Any], depth: int) -> dict[str, Any]:
    return {
        "ticker": b["ticker"],
        "valid": b["valid"],
        "reason": b["reason"],
        "conn": str(b["conn"]),
        "sid": b["sid"],
        "seq": b["xseq"],
        "age_ms": _ms(b["age_s"]),
        "depth": depth,
        "levels": b["levels"],
        "yes": rows.levels(b["yes"]),
        "no": rows.levels(b["no"]),
        "top": _top(b["top"]),
    }


def _book(deps: Deps) -> Handler:
    # Live requests for the same book within one loop turn share one ask (never one already sent).
    asks = Coalescer()

    async def handler(request: web.Request) -> web.Response:
        q = Params(request.query, ("depth", "at"))
        depth = q.integer("depth", 10, 0, MAX_DEPTH)
        at = q.time("at")
        t = await known_ticker(deps, request)
        if at is not None:
            return json_response(await _book_at(deps, t, at, depth))
        b = await asks.ask(
            (t, depth), lambda: ask(deps, deps.orderbook, "orderbook", Book(ticker=t, depth=depth))
        )
        return json_response(book_body(b, depth))

    return handler


async def _book_at(deps: Deps, ticker: str, at: datetime, depth: int) -> dict[str, Any]:
    """The stored book at ``at``, rebuilt through the live book core (shared.book.at), in the
    live route's shape plus what it was rebuilt from."""
    got = await db(deps, book_at(deps.engine, ticker, at))
    if not got.found:
        raise not_found("no stored WebSocket snapshot of this market at or before at")
    b = got.answer(depth)
    return {
        **book_body(b, depth),
        "at": b["at"],
        "snapshot_seq": b["snapshot_xseq"],
        "snapshot_ts": b["snapshot_ts"],
        "ts": b["ts"],
        "deltas": b["deltas"],
    }


def _mover(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "ticker": r["ticker"],
        "valid": r["valid"],
        "mid": rows.mid(r["mid_x2"]),
        "ref_mid": rows.mid(r["ref_mid_x2"]),
        "change": rows.mid(r["change_x2"]),
        "volume_fp": rows.count(r["volume"]),
        "since_ms": _ms(r["since_s"]),
    }


def _spread(r: dict[str, Any]) -> dict[str, Any]:
    return {"ticker": r["ticker"], **(_top(r) or {})}


def _stale(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "ticker": r["ticker"],
        "valid": r["valid"],
        "reason": r["reason"],
        "age_ms": _ms(r["age_s"]),
        "invalid_for_ms": _ms(r["invalid_for_s"]),
        "snapshot_requests": r["snapshot_requests"],
    }


def _scan(deps: Deps, what: str) -> Handler:
    params = {
        "movers": ("top", "window_s", "by"),
        "spreads": ("top", "order"),
        "stale": ("top", "older_than_s"),
    }

    async def handler(request: web.Request) -> web.Response:
        q = Params(request.query, params[what])
        top = q.integer("top", 20, 1, MAX_SCAN_ROWS)
        cmd: Command
        if what == "movers":
            window = q.integer("window_s", 300, 1, 86_400)
            by = q.choice("by", ("mid", "volume"), "mid")
            cmd, convert = Movers(top=top, window_s=float(window), by=by), _mover  # type: ignore[arg-type]
        elif what == "spreads":
            order = q.choice("order", ("widest", "narrowest"), "widest")
            cmd, convert = Spreads(top=top, order=order), _spread  # type: ignore[arg-type]
        else:
            older = q.integer("older_than_s", 0, 1, 86_400) if "older_than_s" in q.values else None
            cmd, convert = Stale(top=top, older_than_s=None if older is None else float(older)), _stale
        answer = await ask(deps, deps.orderbook, "orderbook", cmd)
        return json_response({"scan": what, "rows": [convert(r) for r in answer]})

    return handler


def _worker(w: dict[str, Any]) -> dict[str, Any]:
    rate = w.get("messages_per_s")
    return {
        "worker": w["worker"],
        "state": w["state"],
        "pid": w["pid"],
        "uptime_ms": _ms(w["uptime_s"]),
        "restarts": w["restarts"],
        "parked": w["parked"],
        "heartbeat_age_ms": _ms(w["heartbeat_age_s"]),
        # Messages a second, rounded: a rate for people, not an amount.
        "messages_per_s": None if rate is None else round(rate),
        "last_exit_code": w["last_exit_code"],
    }


def _status(deps: Deps) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        Params(request.query, ())
        s = await ask(deps, deps.supervisor, "supervisor", Status())
        sup = s["supervisor"]
        return json_response(
            {
                "supervisor": {
                    "pid": sup["pid"],
                    "uptime_ms": _ms(sup["uptime_s"]),
                    "strategy": sup["strategy"],
                    "parked": sup["parked"],
                    "shutting_down": sup["shutting_down"],
                },
                "workers": [_worker(w) for w in s["workers"]],
            }
        )

    return handler


def _healthz(deps: Deps) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        Params(request.query, ())
        uptime = round((time.monotonic() - deps.started) * 1000)
        return json_response({"status": "ok", "pid": os.getpid(), "uptime_ms": uptime})

    return handler


async def _check(aw: Any, limit_s: float) -> str:
    try:
        await asyncio.wait_for(aw, limit_s)
    except TimeoutError:
        return f"no answer within {limit_s} s"
    except (ApiError, ControlError) as exc:
        return str(exc)[:200]
    except Exception as exc:  # a database or socket error: the probe reports it, nothing more
        return type(exc).__name__
    return "ok"


def _readyz(deps: Deps) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        Params(request.query, ())
        limit = min(deps.cfg.control_timeout_s, deps.cfg.db_timeout_s)
        database, orderbook = await asyncio.gather(
            _check(queries.ping(deps.engine), limit),
            _check(arequest(deps.orderbook, Ping(), timeout_s=limit), limit + 0.5),
        )
        checks = {
            "gateway": "ok" if deps.ready() else "starting",
            "database": database,
            "orderbook": orderbook,
        }
        ready = all(v == "ok" for v in checks.values())
        body = {"ready": ready, "checks": checks, "bus_messages": deps.bus_messages()}
        return json_response(body, 200 if ready else 503)

    return handler


def routes(deps: Deps) -> list[tuple[str, Handler]]:
    m = f"{API}/markets/{{ticker}}"
    return [
        (f"{m}/book", _book(deps)),
        (f"{API}/scan/movers", _scan(deps, "movers")),
        (f"{API}/scan/spreads", _scan(deps, "spreads")),
        (f"{API}/scan/stale", _scan(deps, "stale")),
        (f"{API}/status", _status(deps)),
        (f"{API}/healthz", _healthz(deps)),
        (f"{API}/readyz", _readyz(deps)),
    ]
