"""The OpenAPI 3.1 document of ``/api/v1``, served at ``/api/v1/openapi.json``.

Written here by hand (the routes are few and their answers are exact strings, which a
generator would not know); :mod:`.openapi_schemas` holds the shapes. The tests validate every
route's real answers against this document and fuzz every route it lists.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from .openapi_schemas import SCHEMAS, ref

API = "/api/v1"


def _param(
    name: str, where: str, schema: dict[str, Any], description: str, required: bool = False
) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": required or where == "path",
        "schema": schema,
        "description": description,
    }


TICKER = _param(
    "ticker", "path", {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"}, "a market ticker"
)
TIME_DOC = "ISO 8601 time (2026-12-03T14:00:00Z; no offset = UTC)"
SINCE = _param("since", "query", {"type": "string"}, f"from this time on (inclusive): {TIME_DOC}")
UNTIL = _param("until", "query", {"type": "string"}, f"before this time (exclusive): {TIME_DOC}")
LIMIT = _param(
    "limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000}, "rows per page (default 100)"
)
CURSOR = _param("cursor", "query", {"type": "string"}, "the next_cursor of the previous page")
TOP = _param("top", "query", {"type": "integer", "minimum": 1, "maximum": 1000}, "rows (default 20)")

_ERRORS = {
    "400": "a parameter was refused (the body names it)",
    "401": "a token is set and the request did not carry it (Authorization: Bearer <token>)",
    "404": "unknown market, or no such route",
    "405": "only GET (and HEAD) are served",
    "413": "the request is larger than [gateway] max_request_bytes",
    "429": "this client's rate limit is used up (Retry-After says when to come back)",
    "503": "a dependency (database, orderbook, supervisor) failed or is not running",
    "504": "a dependency did not answer in time",
}


def _op(summary: str, schema: str, params: list[dict[str, Any]], description: str = "") -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {"description": "OK", "content": {"application/json": {"schema": ref(schema)}}}
    }
    for code, why in _ERRORS.items():
        responses[code] = {"description": why, "content": {"application/json": {"schema": ref("Error")}}}
    op: dict[str, Any] = {"summary": summary, "parameters": params, "responses": responses}
    if description:
        op["description"] = description
    return {"get": op}


def _paths() -> dict[str, Any]:
    m = f"{API}/markets/{{ticker}}"
    rng = [TICKER, SINCE, UNTIL, LIMIT, CURSOR]
    return {
        f"{API}/markets": _op(
            "Markets, by ticker, filtered and paged",
            "MarketList",
            [
                _param("series", "query", {"type": "string"}, "series ticker (KXNFLGAME)"),
                _param("event", "query", {"type": "string"}, "event ticker"),
                _param("status", "query", {"type": "string"}, "market status (active, closed, ...)"),
                _param(
                    "q", "query", {"type": "string", "maxLength": 100}, "text in ticker, titles (any case)"
                ),
                LIMIT,
                CURSOR,
            ],
        ),
        m: _op("One market: its metadata and its latest state", "MarketDetail", [TICKER]),
        f"{m}/latest": _op(
            "The market's latest top of book and trade",
            "Latest",
            [TICKER],
            "The live state from the bus when it is newer than what the database holds.",
        ),
        f"{m}/snapshots": _op("Stored book snapshots, oldest first", "Snapshots", rng),
        f"{m}/trades": _op("Stored trades, oldest first", "Trades", rng),
        f"{m}/deltas": _op("Stored book deltas, in subscription and sequence order", "Deltas", rng),
        f"{m}/book": _op(
            "The live L2 book from the orderbook, with its validity and the seq it reflects",
            "Book",
            [
                TICKER,
                _param(
                    "depth",
                    "query",
                    {"type": "integer", "minimum": 0, "maximum": 1000},
                    "levels a side (0: all; default 10)",
                ),
                _param(
                    "at",
                    "query",
                    {"type": "string"},
                    "the stored book at this moment instead of the live one: the newest stored "
                    "WebSocket snapshot at or before it plus its deltas, INVALID ('gap') where the "
                    f"stored seqs have a hole; 404 when no snapshot precedes it. {TIME_DOC}",
                ),
            ],
        ),
        f"{m}/gaps": _op(
            "Sequence gaps in what is stored, and each recorded gap's recovery",
            "Gaps",
            [TICKER],
            'Shape: {"ticker": ..., "gaps": [3, 6, 12], "gap_count": 3, "has_gaps": true, ...}',
        ),
        f"{API}/scan/movers": _op(
            "Books whose mid moved most (or traded most)",
            "Movers",
            [
                TOP,
                _param(
                    "window_s",
                    "query",
                    {"type": "integer", "minimum": 1, "maximum": 86400},
                    "look-back (default 300)",
                ),
                _param("by", "query", {"enum": ["mid", "volume"]}, "rank by mid change or volume"),
            ],
        ),
        f"{API}/scan/spreads": _op(
            "VALID two-sided books by YES spread",
            "Spreads",
            [TOP, _param("order", "query", {"enum": ["widest", "narrowest"]}, "which end first")],
        ),
        f"{API}/scan/stale": _op(
            "INVALID books, then VALID books unchanged for a while",
            "Stale",
            [
                TOP,
                _param(
                    "older_than_s", "query", {"type": "integer", "minimum": 1, "maximum": 86400}, "age limit"
                ),
            ],
        ),
        f"{API}/signals": _op(
            "Stored arbitrage signals, oldest first",
            "Signals",
            [
                _param("ticker", "query", {"type": "string"}, "one market's"),
                _param("strategy", "query", {"type": "string", "maxLength": 64}, "one strategy's"),
                SINCE,
                UNTIL,
                LIMIT,
                CURSOR,
            ],
        ),
        f"{API}/status": _op("Every worker the supervisor runs", "Status", []),
        f"{API}/healthz": _op("The gateway process answers", "Health", []),
        f"{API}/readyz": _op(
            "The gateway can serve: database and orderbook answer (503 with the same body when not)",
            "Ready",
            [],
        ),
    }


@cache
def _document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "kxfeed gateway",
            "version": "1",
            "description": (
                "Kalshi market data kxfeed keeps: markets, stored history, live books and scans, "
                "gaps, signals, worker status. Prices are exact decimal strings of dollars "
                '("0.4300"), counts Kalshi\'s _fp strings ("25.00"), never floats. The live '
                "stream is the WebSocket at /api/v1/stream (?format=json|ndjson: one message per "
                "text frame, or several, one per line; topics <kind>. or <kind>.<ticker prefix>; "
                "off loopback the token as Authorization: Bearer or as the subprotocol "
                "kxfeed.bearer.<base64url(token)> offered with kxfeed). Integers that can pass "
                "2^53 (connection ids conn; on the stream also ns times such as ts_recv_ns) are "
                "decimal strings, exact in JavaScript."
            ),
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "paths": _paths(),
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{}, {"bearer": []}],
    }


def document() -> dict[str, Any]:
    """A copy of the document (callers may not change the cached one)."""
    return copy.deepcopy(_document())
