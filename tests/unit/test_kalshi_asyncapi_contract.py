"""Contract: Kalshi's AsyncAPI (current and previous, tests/fixtures/kalshi-spec/) against
kxfeed's wire schema (shared.kalshi.ws).

Every example message of both files decodes, the server's through the frame union and the
client's commands through their params Struct, except the types and commands kxfeed declares
here as deliberately not decoded (counted under ``unknown_types`` and logged once by the
session, which the test checks too). And every channel and message type of the current spec
is either handled or declared: a new one fails the suite until someone decides.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from services.connector.subscriptions import LIFECYCLE, MARKET_CHANNELS, PRIVATE_CHANNELS
from shared.kalshi import ws

from .test_connector_support import Script, counted

SPEC_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "kalshi-spec"
SPECS = {"current": SPEC_DIR / "asyncapi.yaml", "previous": SPEC_DIR / "previous" / "asyncapi.yaml"}

#: Server message types kxfeed does not decode, on purpose: index prices (CF Benchmarks, Pyth)
#: are no market data of Kalshi's books. The session counts each under unknown_types.
COUNTED_NOT_DECODED = frozenset(
    {
        "cfbenchmarks_value",
        "cfbenchmarks_value_indexlist",
        "cfbenchmarks_value_5hz",
        "cfbenchmarks_value_5hz_indexlist",
        "pyth_value",
        "pyth_value_underlying_list",
    }
)
#: Commands kxfeed never sends (the index channels' actions): no Struct of ours encodes them.
NOT_SENT_ACTIONS = frozenset(
    {
        "subscribe_indices",
        "unsubscribe_indices",
        "indexlist",
        "subscribe_underlyings",
        "unsubscribe_underlyings",
        "underlying_list",
    }
)
#: Channels kxfeed does not subscribe to, and why; their frames still decode (or are counted).
NOT_SUBSCRIBED = {
    "multivariate_market_lifecycle": "combo markets are outside the market filter",
    "communications": "RFQs and quotes: not market data",
    "order_group_updates": "order management, not market data",
    "user_orders": "order management, not market data",
    "cfbenchmarks_value": "index prices (COUNTED_NOT_DECODED)",
    "cfbenchmarks_value_5hz": "index prices (COUNTED_NOT_DECODED)",
    "pyth_value": "index prices (COUNTED_NOT_DECODED)",
}
#: Not channels one subscribes to: commands and replies, and the WebSocket's own ping/pong.
NOT_CHANNELS = frozenset({"root", "control_frames"})
_PARAMS = {
    "subscribe": ws.SubscribeParams,
    "unsubscribe": ws.UnsubscribeParams,
    "update_subscription": ws.UpdateParams,
}


def _load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    return doc


def _resolve(doc: dict[str, Any], x: Any) -> Any:
    while isinstance(x, dict) and "$ref" in x:
        node: Any = doc
        for part in x["$ref"].lstrip("#/").split("/"):
            node = node[part]
        x = node
    return x


def _examples(doc: dict[str, Any]) -> list[tuple[str, Any]]:
    out = []
    for name, m in doc["components"]["messages"].items():
        for i, ex in enumerate(_resolve(doc, m).get("examples") or []):
            out.append((f"{name}[{i}]", ex["payload"]))
    return out


def _type_const(doc: dict[str, Any], message: Any) -> str | None:
    payload = _resolve(doc, _resolve(doc, message).get("payload", {}))
    t = _resolve(doc, payload.get("properties", {}).get("type", {}))
    const = t.get("const") if isinstance(t, dict) else None
    return const if isinstance(const, str) else None


CASES = [
    pytest.param(which, name, payload, id=f"{which}:{name}")
    for which, path in SPECS.items()
    for name, payload in _examples(_load(path))
]


@pytest.mark.parametrize(("which", "name", "payload"), CASES)
def test_every_asyncapi_example_decodes_through_kxfeeds_wire_schema(
    which: str, name: str, payload: Any
) -> None:
    if not isinstance(payload, dict):
        return  # ping / pong control frames: the WebSocket library's, not JSON
    raw = json.dumps(payload).encode()
    if "cmd" in payload:
        params = payload.get("params")
        if params is None or payload["cmd"] == "list_subscriptions":
            assert payload["cmd"] in ("list_subscriptions", "unsubscribe")  # a command with no params
            return
        if params.get("action") in NOT_SENT_ACTIONS:
            return
        msgspec.json.decode(json.dumps(params).encode(), type=_PARAMS[payload["cmd"]])
        return
    if payload.get("type") in COUNTED_NOT_DECODED:
        with pytest.raises(msgspec.ValidationError):
            ws.FRAME_DECODER.decode(raw)
        return
    frame = ws.FRAME_DECODER.decode(raw)
    assert ws.TYPE_NAMES[type(frame)] == payload["type"]


@pytest.mark.parametrize(("which", "name", "payload"), CASES)
def test_every_asyncapi_example_is_used_or_counted_by_the_session(
    which: str, name: str, payload: Any
) -> None:
    """Through a live session: no example is a bad frame; the declared ones count as unknown."""
    if not isinstance(payload, dict) or "cmd" in payload:
        return
    sc = Script(["KXA-26JAN01-X"])
    sc.boot()
    sc.feed(payload)
    assert sc.s.counts.total("bad_frames") == 0, sc.s.counts
    declared = payload["type"] in COUNTED_NOT_DECODED
    assert counted(sc.s, "unknown_types", payload["type"]) == (1 if declared else 0)


def test_every_channel_and_message_type_of_the_current_spec_is_handled_or_declared() -> None:
    doc = _load(SPECS["current"])
    subscribed = {*MARKET_CHANNELS, LIFECYCLE, *PRIVATE_CHANNELS}
    undecided = []
    for channel, body in doc["channels"].items():
        if channel not in NOT_CHANNELS and channel not in subscribed and channel not in NOT_SUBSCRIBED:
            undecided.append(f"channel {channel}")
        for message in (body.get("messages") or {}).values():
            t = _type_const(doc, message)
            if t is not None and t not in ws.KNOWN_TYPES and t not in COUNTED_NOT_DECODED:
                undecided.append(f"message type {t} on {channel}")
    assert undecided == [], "kxfeed neither handles nor deliberately counts these"
    # And every declaration still names something the spec has (no stale entries).
    types = {
        _type_const(doc, m)
        for body in doc["channels"].values()
        for m in (body.get("messages") or {}).values()
    }
    assert types >= COUNTED_NOT_DECODED
    assert set(NOT_SUBSCRIBED) <= set(doc["channels"])
