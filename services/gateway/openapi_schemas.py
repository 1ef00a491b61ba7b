"""The OpenAPI document's schemas (JSON Schema 2020-12, as OpenAPI 3.1 uses): one per answer
shape, strict (``additionalProperties: false``), so a test validating real answers against
them catches any drift between the code and the document."""

from __future__ import annotations

from typing import Any

PRICE = {"type": "string", "pattern": r"^-?[0-9]+\.[0-9]{4}$", "description": "dollars, exact: 0.4300"}
COUNT = {"type": "string", "pattern": r"^-?[0-9]+\.[0-9]{2}$", "description": "contracts (_fp): 25.00"}
MID = {"type": "string", "pattern": r"^-?[0-9]+\.[0-9]{5}$", "description": "half-cent exact mid: 0.43505"}
MONEY = {"type": "string", "pattern": r"^-?[0-9]+\.[0-9]{6}$", "description": "dollars to the micro-dollar"}
TIME = {
    "type": "string",
    "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$",
    "description": "ISO 8601 UTC, microseconds",
}
INT = {"type": "integer"}
#: An integer that passes 2**53 (the connector numbers connections by their start in ns): a
#: decimal string, so a JavaScript client keeps it exact.
CONN = {"type": "string", "pattern": r"^-?[0-9]+$", "description": "connection id, a decimal string"}
STR = {"type": "string"}
BOOL = {"type": "boolean"}
CURSOR = {"type": ["string", "null"], "description": "pass as ?cursor= for the next page; null: last page"}


def null(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` or null."""
    out = dict(schema)
    t = out["type"]
    out["type"] = [*t, "null"] if isinstance(t, list) else [t, "null"]
    return out


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(props: dict[str, Any], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": props,
        "required": [k for k in props if k not in optional],
        "additionalProperties": False,
    }


def array(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


LEVELS = array({"type": "array", "prefixItems": [PRICE, COUNT], "minItems": 2, "maxItems": 2})
TOP = obj(
    {"yes_bid": null(PRICE), "yes_bid_size_fp": COUNT, "yes_ask": null(PRICE), "yes_ask_size_fp": COUNT}
)
LIVE_TOP = obj(
    {
        **TOP["properties"],
        "no_bid": null(PRICE), "no_ask": null(PRICE), "mid": null(MID), "spread": null(PRICE),
    }
)  # fmt: skip
LAST_TRADE = obj(
    {
        "trade_id": STR,
        "yes_price": PRICE,
        "no_price": PRICE,
        "count_fp": COUNT,
        "taker_side": STR,
        "ts": null(TIME),
    }
)
RANGE = obj({"start": PRICE, "end": PRICE, "step": PRICE})

SCHEMAS: dict[str, Any] = {
    "Error": obj(
        {
            "error": {"type": "string", "description": "a code: bad_parameter, not_found, unauthorized, ..."},
            "detail": STR,
            "param": {"type": "string", "description": "the parameter refused (400)"},
        },
        optional=("param",),
    ),
    "Market": obj(
        {
            "ticker": STR,
            "event_ticker": null(STR),
            "series_ticker": null(STR),
            "title": null(STR),
            "event_title": null(STR),
            "yes_sub_title": null(STR),
            "no_sub_title": null(STR),
            "status": null(STR),
            "market_type": null(STR),
            "category": null(STR),
            "open_time": null(TIME),
            "close_time": null(TIME),
            "expiration_time": null(TIME),
            "price_ranges": null(array(RANGE)),
            "fee_type": null(STR),
            "fee_multiplier": null(MONEY),
            "result": null(STR),
            "strike_type": null(STR),
            "floor_strike": null(STR),
            "cap_strike": null(STR),
            "updated": TIME,
        }
    ),
    "MarketList": obj({"markets": array(ref("Market")), "next_cursor": CURSOR}),
    "Latest": obj(
        {
            "ticker": STR,
            "source": {
                "type": ["string", "null"],
                "description": "live (the bus), database:book|ws|poll, null: none",
            },
            "valid": null(BOOL),
            "seq": null(INT),
            "top": {"oneOf": [TOP, {"type": "null"}]},
            "mid": null(MID),
            "spread": null(PRICE),
            "ts": null(TIME),
            "last_trade": {"oneOf": [LAST_TRADE, {"type": "null"}]},
        }
    ),
    "MarketDetail": obj(
        {"ticker": STR, "market": {"oneOf": [ref("Market"), {"type": "null"}]}, "latest": ref("Latest")}
    ),
    "Snapshot": obj(
        {
            "ticker": STR,
            "source": STR,
            "conn": CONN,
            "sid": INT,
            "seq": {"type": "integer", "description": "Kalshi's per-subscription seq; 0 for REST"},
            "yes": LEVELS,
            "no": LEVELS,
            "ts": TIME,
            "recv": TIME,
        }
    ),
    "Trade": obj(
        {
            "trade_id": STR,
            "ticker": STR,
            "yes_price": PRICE,
            "no_price": PRICE,
            "count_fp": COUNT,
            "taker_side": STR,
            "is_block_trade": BOOL,
            "source": STR,
            "ts": TIME,
            "recv": TIME,
        }
    ),
    "Delta": obj(
        {
            "ticker": STR,
            "conn": CONN,
            "sid": INT,
            "seq": INT,
            "side": {"enum": ["yes", "no"]},
            "price": PRICE,
            "delta_fp": COUNT,
            "ts": TIME,
            "recv": TIME,
        }
    ),
    "Snapshots": obj({"ticker": STR, "snapshots": array(ref("Snapshot")), "next_cursor": CURSOR}),
    "Trades": obj({"ticker": STR, "trades": array(ref("Trade")), "next_cursor": CURSOR}),
    "Deltas": obj({"ticker": STR, "deltas": array(ref("Delta")), "next_cursor": CURSOR}),
    "Signal": obj(
        {
            "strategy": STR,
            "ticker": STR,
            "side": STR,
            "price": PRICE,
            "size_fp": COUNT,
            "fair": null(MONEY),
            "edge": MONEY,
            "fees": MONEY,
            "legs": array(STR),
            "detail": STR,
            "ts": TIME,
            "recv": TIME,
        }
    ),
    "Signals": obj({"signals": array(ref("Signal")), "next_cursor": CURSOR}),
    "Gaps": obj(
        {
            "ticker": STR,
            "gaps": {**array(INT), "description": "the missing sequence numbers (at most 10,000 listed)"},
            "gap_count": {"type": "integer", "description": "how many sequence numbers are missing"},
            "has_gaps": BOOL,
            "gaps_truncated": BOOL,
            "holes": array(obj({"conn": CONN, "sid": INT, "first": INT, "last": INT, "count": INT})),
            "subscriptions": array(
                obj(
                    {
                        "conn": CONN,
                        "sid": INT,
                        "first_seq": INT,
                        "last_seq": INT,
                        "stored": INT,
                        "missing": INT,
                    }
                )
            ),
            "recorded": array(
                obj(
                    {
                        "conn": CONN,
                        "sid": INT,
                        "expected": INT,
                        "received": INT,
                        "reason": STR,
                        "status": {"enum": ["open", "recovered"]},
                        "detected": null(TIME),
                        "recovered": null(TIME),
                        "method": null(STR),
                    }
                )
            ),
        }
    ),
    "Book": obj(
        {
            "ticker": STR,
            "valid": BOOL,
            "reason": STR,
            "conn": CONN,
            "sid": INT,
            "seq": {"type": "integer", "description": "the last Kalshi seq this book reflects"},
            "age_ms": null(INT),
            "depth": INT,
            "levels": obj({"yes": INT, "no": INT}),
            "yes": LEVELS,
            "no": LEVELS,
            "top": {"oneOf": [LIVE_TOP, {"type": "null"}]},
            # With ?at=: the stored book at that moment, and what it was rebuilt from.
            "at": STR,
            "snapshot_seq": INT,
            "snapshot_ts": STR,
            "ts": STR,
            "deltas": INT,
        },
        optional=("at", "snapshot_seq", "snapshot_ts", "ts", "deltas"),
    ),
    "Movers": obj(
        {
            "scan": {"const": "movers"},
            "rows": array(
                obj(
                    {
                        "ticker": STR,
                        "valid": BOOL,
                        "mid": null(MID),
                        "ref_mid": null(MID),
                        "change": null(MID),
                        "volume_fp": COUNT,
                        "since_ms": INT,
                    }
                )
            ),
        }
    ),
    "Spreads": obj(
        {"scan": {"const": "spreads"}, "rows": array(obj({"ticker": STR, **LIVE_TOP["properties"]}))}
    ),
    "Stale": obj(
        {
            "scan": {"const": "stale"},
            "rows": array(
                obj(
                    {
                        "ticker": STR,
                        "valid": BOOL,
                        "reason": STR,
                        "age_ms": INT,
                        "invalid_for_ms": null(INT),
                        "snapshot_requests": INT,
                    }
                )
            ),
        }
    ),
    "Status": obj(
        {
            "supervisor": obj(
                {"pid": INT, "uptime_ms": INT, "strategy": STR, "parked": array(STR), "shutting_down": BOOL}
            ),
            "workers": array(
                obj(
                    {
                        "worker": STR,
                        "state": STR,
                        "pid": null(INT),
                        "uptime_ms": null(INT),
                        "restarts": INT,
                        "parked": BOOL,
                        "heartbeat_age_ms": null(INT),
                        "messages_per_s": null(INT),
                        "last_exit_code": null(INT),
                    }
                )
            ),
        }
    ),
    "Health": obj({"status": {"const": "ok"}, "pid": INT, "uptime_ms": INT}),
    "Ready": obj(
        {
            "ready": BOOL,
            "checks": obj({"gateway": STR, "database": STR, "orderbook": STR}),
            "bus_messages": INT,
        }
    ),
}
