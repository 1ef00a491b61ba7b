"""Hostile WebSocket frames for the connector's decode path (tests and bench/fuzz.py).

:class:`Pipeline` is the connector's path from a raw frame to the bus: a live
:class:`~services.connector.session.Session` (subscribed, books valid) decodes and parses,
and what it publishes is bus-encoded and decoded again, as a publisher and a consumer
would. Its contract: nothing but the counted kinds of rejection ever comes out of it
(:meth:`Pipeline.feed` lets any exception through, for the caller to count).

:class:`Mutator` makes frames from a corpus of valid ones (the Kalshi fixtures, one or
more of every frame type): a field replaced by a hostile JSON value, removed, added, the
type swapped, or the bytes cut and flipped. Valid frames are interleaved so books and
sequences stay alive and the in-order paths are exercised too.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import msgspec

from services.connector.counts import Counts
from services.connector.session import Session
from services.connector.validity import Recovery
from shared.kalshi.ws import KNOWN_TYPES
from shared.messages import BATCH_DECODER, BATCH_ENCODER

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "kalshi"
TS = 1_790_000_000_000_000_000  # ns
SEQUENCED = ("orderbook_delta", "orderbook_snapshot")
LIFECYCLE_TYPES = (
    "market_lifecycle_v2",
    "multivariate_market_lifecycle",
    "event_lifecycle",
    "event_fee_update",
)
#: The channel whose sid a frame type travels on (replies keep their own ids and sids).
CHANNEL_OF = {
    "orderbook_delta": "orderbook_delta",
    "orderbook_snapshot": "orderbook_delta",
    "ticker": "ticker",
    "trade": "trade",
    "fill": "fill",
    "market_position": "market_positions",
    **{t: "market_lifecycle_v2" for t in LIFECYCLE_TYPES},
}
_HOLE = "\x00hostile\x00"
_HOLE_JSON = msgspec.json.encode(_HOLE)
_ENCODE = msgspec.json.encode
_DECODE = msgspec.json.Decoder(dict[str, Any]).decode

#: JSON values a hostile or broken server might put anywhere (raw, so any number is possible).
HOSTILE: tuple[bytes, ...] = (
    b"0", b"-1", b"1", b"7", b"9223372036854775807", b"9223372036854775806", b"9223372036854775808",
    b"-9223372036854775808", b"-9223372036854775809", b"18446744073709551616", b"100000000000000000",
    b"100000000000000000000000000000", b"1180591620717411303424", b"1" + b"0" * 400,
    b"1e400", b"-1e400", b"0.5", b"1.0", b"-0.0", b"1e-400", b"1E5", b"1e999999999",
    b'""', b'"0"', b'"0.43"', b'"0.4300"', b'"0.99990"', b'"1"', b'"1.00"', b'"-1.00"', b'"0.00"',
    b'"100000000000000000000000.00"', b'"1' + b"0" * 30 + b'.00"', b'"92233720368547758.07"',
    b'"92233720368547758.08"', b'"-92233720368547758.09"', b'"0.00001"', b'"1e5"', b'"NaN"',
    b'"Infinity"', b'"-"', b'"."', b'"1."', b'".5"', b'" 1"', b'"\\u0661"', b'"' + b"9" * 5000 + b'"',
    b'"0.' + b"0" * 60 + b'"', b'"yes"', b'"no"', b'"bid"', b'"ask"', b'"2026-11-03T23:41:07Z"',
    b'"0001-01-01T00:00:00+23:59"', b'"9999-12-31T23:59:59-23:59"', b'"\\ud800"', b'"x"',
    b"null", b"true", b"false", b"[]", b"{}", b'[["0.5","1.00"]]', b'[["0.5"]]', b"[[1,2]]",
    b'[["0.5","1.00"],["0.5","2.00"]]', b'[["1e400","1.00"]]', b'{"a":1}', b'{"code":25}',
    b"[" * 3000 + b"]" * 3000, b'{"a":' * 2000 + b"1" + b"}" * 2000,
)  # fmt: skip


def load_corpus() -> list[dict[str, Any]]:
    """One or more valid frames of every frame type kxfeed decodes."""
    out: list[dict[str, Any]] = []
    for path in sorted(FIXTURES.glob("ws_*.json")):
        if path.name.endswith(".golden.json"):
            continue
        frame = json.loads(path.read_text())
        if isinstance(frame, dict) and frame.get("type") in KNOWN_TYPES:
            out.append(frame)
    lifecycle = next(f for f in out if f["type"] == "market_lifecycle_v2")
    out.append({**lifecycle, "type": "multivariate_market_lifecycle"})
    missing = KNOWN_TYPES - {f["type"] for f in out}
    assert not missing, f"no corpus frame of type {sorted(missing)}"
    return out


#: What every Pipeline's sessions counted in this process (the cores' counts; in the real
#: connector the worker exports the same counts to Prometheus).
_ALL = Counts()


def _core_name(name: str) -> str:
    """``kxfeed_ws_bad_frames_total`` -> ``bad_frames`` (the core's name for that counter)."""
    return name.removeprefix("kxfeed_ws_").removesuffix("_total")


def counter_by_label(name: str, label: str) -> dict[str, float]:
    """One connector counter (kxfeed_ws_messages/bad_frames/unknown_types_total) by its label
    (``label`` names it: every such counter has one), over every Pipeline so far."""
    core = _core_name(name)
    return {lab: float(n) for (k, lab), n in _ALL.items() if k == core}


def counter_total(name: str) -> float:
    """Sum of one connector counter over its labels, over every Pipeline so far."""
    return float(_ALL.total(_core_name(name)))


class Pipeline:
    """A subscribed Session with valid books; frames in, bus-encoded messages out."""

    def __init__(self, corpus: list[dict[str, Any]]) -> None:
        self.corpus = corpus
        self.markets = sorted({f["msg"]["market_ticker"] for f in corpus if isinstance(f.get("msg"), dict)
                               and isinstance(f["msg"].get("market_ticker"), str)})  # fmt: skip
        #: Messages published (encoded, decoded back) over every session of this pipeline.
        self.published = 0
        #: What this pipeline's sessions counted (each session's counts start at zero).
        self.counts = Counts()
        self.sessions = 0
        self.now = 0.0
        self._boot()

    def _boot(self) -> None:
        self.sessions += 1
        self.session = Session(self.sessions, recovery=Recovery(), max_markets=1000,
                               private=("fill", "market_positions"))  # fmt: skip
        self.session.start(self.markets, self.now)
        replies = []
        #: channel -> sid, as confirmed
        self.sids: dict[str, int] = {}
        for cmd in map(json.loads, self.session.table.take_commands()):
            for ch in cmd["params"]["channels"]:
                sid = len(self.sids) + 1
                self.sids[ch] = sid
                replies.append({"id": cmd["id"], "type": "subscribed", "msg": {"channel": ch, "sid": sid}})
        self.seq = {"orderbook_delta": 0, "market_lifecycle_v2": 0}
        self.session.frames([json.dumps(r).encode() for r in replies], TS, self.now)
        snaps = [f for f in self.corpus if f["type"] == "orderbook_snapshot"]
        warm = [
            self.placed({**snaps[0], "msg": {**snaps[0]["msg"], "market_ticker": t}}) for t in self.markets
        ]
        self.feed([json.dumps(f).encode() for f in warm])

    def placed(self, frame: dict[str, Any]) -> dict[str, Any]:
        """``frame`` on this session's live sid for its channel, at the next seq of that sid."""
        channel = CHANNEL_OF.get(frame["type"])
        if channel is None or channel not in self.sids:
            return frame
        frame = {**frame, "sid": self.sids[channel]}
        if channel in self.seq and (channel == "orderbook_delta" or "seq" in frame):
            self.seq[channel] += 1
            frame["seq"] = self.seq[channel]
        return frame

    def feed(self, raws: list[bytes]) -> None:
        """Decode, parse, publish (encode) and consume (decode) ``raws``. Raises only on a bug."""
        self.now += 0.01
        s = self.session
        before = dict(s.counts)
        s.frames(raws, TS, self.now)
        s.tick(self.now, TS)
        for key, value in s.counts.items():
            if value != before.get(key, 0):
                self.counts.add(*key, n=value - before.get(key, 0))
                _ALL.add(*key, n=value - before.get(key, 0))
        out = s.take()
        if out:
            # What a publisher does with them (one batch per topic) and what a consumer reads.
            for msg in out:
                msg.topic()
            payload = BATCH_ENCODER.encode(out)
            back = BATCH_DECODER.decode(payload)
            if back != out:
                raise AssertionError("bus round trip changed a message")
            self.published += len(out)
        s.table.take_commands()
        s.lifecycle.clear()
        s.rejected.clear()
        if s.broken:
            self._boot()


class Mutator:
    """Frames made from the corpus: about a fifth valid, the rest hostile in one way."""

    def __init__(self, pipeline: Pipeline, seed: int) -> None:
        self.pipe = pipeline
        self.rng = random.Random(seed)
        self.corpus = pipeline.corpus

    def frame(self) -> bytes:
        rng = self.rng
        base = self.pipe.placed(rng.choice(self.corpus))
        roll = rng.random()
        raw = _ENCODE(base)
        if roll < 0.2:
            return raw
        if roll < 0.3:
            return self._bytes(raw)
        frame = _DECODE(raw)  # a deep copy the mutation may change
        holder, key = self._spot(frame)
        op = rng.random()
        if op < 0.7:
            holder[key] = _HOLE
        elif op < 0.8 and isinstance(holder, dict):
            del holder[key]
        elif op < 0.9:
            frame["type"] = rng.choice([*sorted(KNOWN_TYPES), "rfq_created", "", "x" * 100])
        else:
            if isinstance(holder, dict):
                holder[f"extra_{rng.randrange(5)}"] = _HOLE
            else:
                holder.append(_HOLE)
        raw = _ENCODE(frame)
        return raw.replace(_HOLE_JSON, rng.choice(HOSTILE)) if _HOLE_JSON in raw else raw

    def _spot(self, frame: dict[str, Any]) -> tuple[Any, Any]:
        """A random (container, key) in the frame: a top-level field, a msg field, a level."""
        rng = self.rng
        holder: Any = frame
        key: Any = rng.choice(list(frame))
        while isinstance(holder[key], dict | list) and holder[key] and rng.random() < 0.75:
            holder = holder[key]
            key = rng.choice(list(holder)) if isinstance(holder, dict) else rng.randrange(len(holder))
        return holder, key

    def _bytes(self, raw: bytes) -> bytes:
        rng = self.rng
        b = bytearray(raw)
        op = rng.randrange(4)
        if op == 0:
            return bytes(b[: rng.randrange(len(b))])
        if op == 1:
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif op == 2:
            b[rng.randrange(len(b)) : rng.randrange(len(b))] = rng.choice(HOSTILE)
        else:
            b += rng.choice(HOSTILE)
        return bytes(b)
