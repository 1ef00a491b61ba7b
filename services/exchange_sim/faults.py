"""Fault injection: what a client sees when Kalshi misbehaves, on demand or from a spec.

Kinds (``inject(kind, **params)``; ``conn=`` targets one connection, default all):

- ``gap``        withhold the next ``count`` seq-numbered frames of ``sid`` (seq still advances)
- ``duplicate``  send the next ``count`` frames of ``sid`` twice
- ``disconnect`` drop the TCP connection (``code=`` sends a close frame first)
- ``stall``      send nothing at all (data, replies, pings) for ``seconds``
- ``no_ping``    neither ping nor answer pings for ``seconds`` (default: for good)
- ``error25``    terminal error on ``sid`` (``code=`` 25 or 10) and end that subscription
- ``auth401``    refuse the next ``count`` WS handshakes (or all for ``seconds``) with HTTP 401
- ``rate429``    answer the next ``count`` REST requests (or all for ``seconds``) with Kalshi's 429
- ``rest5xx``    answer REST with ``status`` (default 500) likewise
- ``malformed``  send ``count`` bad frames of ``variant`` json | types | unknown | huge (default: each)

Spec (config ``sim.faults`` / ``kxfeed sim --faults``): comma-separated
``KIND:P`` (probability per frame / request / handshake), ``KIND:EVERYs`` (all
connections every EVERY seconds) or ``KIND:EVERYs:DURs`` (with ``seconds=DUR``),
e.g. ``gap:0.001,disconnect:30s,stall:60s:5s,rate429:0.05``.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

KINDS = (
    "gap",
    "duplicate",
    "disconnect",
    "stall",
    "no_ping",
    "error25",
    "auth401",
    "rate429",
    "rest5xx",
    "malformed",
)
WS_KINDS = ("gap", "duplicate", "disconnect", "stall", "no_ping", "error25", "malformed")
HTTP_KINDS = ("auth401", "rate429", "rest5xx")
MALFORMED = ("json", "types", "unknown", "huge")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m)$")


class FaultError(ValueError):
    """A fault spec or injection that cannot be applied; the message says why."""


@dataclass(frozen=True)
class Rule:
    kind: str
    prob: float = 0.0
    every_s: float = 0.0
    duration_s: float = 0.0


def parse_duration(text: str) -> float:
    m = _DURATION.match(text.strip())
    if not m:
        raise FaultError(f"bad duration {text!r} (use e.g. 500ms, 30s, 2m)")
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "ms" else value * 60 if unit == "m" else value


def parse_spec(spec: str) -> list[Rule]:
    rules = []
    for item in (x.strip() for x in spec.split(",")):
        if not item:
            continue
        kind, *rest = item.split(":")
        if kind not in KINDS:
            raise FaultError(f"unknown fault {kind!r} in {spec!r}; kinds: {', '.join(KINDS)}")
        if not rest:
            raise FaultError(
                f"fault {item!r} needs a probability or a period, e.g. {kind}:0.01 or {kind}:30s"
            )
        if len(rest) > 2:
            raise FaultError(f"fault {item!r}: use KIND:P, KIND:EVERYs or KIND:EVERYs:DURs")
        value = rest[0]
        if value and value[-1].isalpha():
            try:
                dur = parse_duration(rest[1]) if len(rest) == 2 else 0.0
                rules.append(Rule(kind, every_s=parse_duration(value), duration_s=dur))
            except FaultError as exc:
                raise FaultError(f"fault {item!r}: {exc}") from None
        else:
            try:
                p = float(value)
            except ValueError:
                raise FaultError(
                    f"fault {item!r}: {value!r} is neither a probability nor a duration"
                ) from None
            if not 0.0 < p <= 1.0:
                raise FaultError(f"fault {item!r}: probability must be in (0, 1]")
            rules.append(Rule(kind, prob=p))
    return rules


class HttpFault:
    """Countdown / time window for one HTTP-level fault kind."""

    __slots__ = ("count", "prob", "status", "until")

    def __init__(self) -> None:
        self.count = 0
        self.until = 0.0
        self.prob = 0.0
        self.status = 500

    def fire(self, now: float, rng: random.Random) -> bool:
        if self.count > 0:
            self.count -= 1
            return True
        if now < self.until:
            return True
        return bool(self.prob) and rng.random() < self.prob


class FaultPlan:
    """Fault state that is not per connection: HTTP countdowns and per-frame probabilities."""

    def __init__(self, seed: int, spec: str = "") -> None:
        self.rng = random.Random(f"kxfeed-sim-faults:{seed}")
        self.rules = parse_spec(spec)
        self.http = {k: HttpFault() for k in HTTP_KINDS}
        self.frame_probs: dict[str, float] = {}
        for r in self.rules:
            if r.prob and r.kind in HTTP_KINDS:
                self.http[r.kind].prob = r.prob
            elif r.prob:
                self.frame_probs[r.kind] = r.prob

    def periodic(self) -> list[Rule]:
        return [r for r in self.rules if r.every_s]

    def arm_http(self, kind: str, now: float, params: dict[str, Any]) -> dict[str, Any]:
        f = self.http[kind]
        seconds = float(params.get("seconds", 0) or 0)
        if seconds:
            f.until = max(f.until, now + seconds)
        else:
            f.count += int(params.get("count", 1))
        if kind == "rest5xx":
            status = int(params.get("status", 500))
            if not 500 <= status <= 599:
                raise FaultError(f"rest5xx status must be 5xx, not {status}")
            f.status = status
        return {"kind": kind, "count": f.count, "seconds": seconds}

    def http_fires(self, kind: str, now: float) -> bool:
        return self.http[kind].fire(now, self.rng)


def malformed_frames(variant: str | None, sid: int) -> list[bytes]:
    """Frames a robust client must survive: not JSON, wrong types, unknown type, oversize."""
    variants = MALFORMED if variant in (None, "", "all") else (variant,)
    out = []
    for v in variants:
        if v == "json":
            out.append(b'{"type":"orderbook_delta","sid":%d,"seq":' % sid)
        elif v == "types":
            out.append(
                b'{"type":"orderbook_delta","sid":"%d","seq":"x","msg":{"market_ticker":7,'
                b'"price_dollars":0.43,"delta_fp":-25,"side":true}}' % sid
            )
        elif v == "unknown":
            out.append(
                b'{"type":"kxfeed_sim_unknown","sid":%d,"msg":{"note":"a type no client knows"}}' % sid
            )
        elif v == "huge":
            pad = b"x" * (2 * 1024 * 1024)
            out.append(b'{"type":"kxfeed_sim_padding","sid":%d,"msg":{"pad":"%s"}}' % (sid, pad))
        else:
            raise FaultError(f"malformed variant must be one of {', '.join(MALFORMED)}, not {v!r}")
    return out
