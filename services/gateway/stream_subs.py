"""The stream's client protocol (pure): the requests a client sends, its subscriptions and what
each one takes, and the shapes the fan-out passes around (a prepared message, a group).

A subscription names topics ``<kind>.`` (every market) or ``<kind>.<prefix>`` (the markets
whose ticker starts with ``prefix``, as a bus topic prefix does: ``tob.KXBTC-`` is the KXBTC
series, ``tob.KXBTC-25DEC31-B100`` one market), and optionally ``tickers`` (exact markets:
a message is taken when its market passes both). A gap naming several markets is taken when
any of them passes.
"""

from __future__ import annotations

from typing import Annotated, Any, NamedTuple

import msgspec

from services.gateway.stream_queue import Limits, Outbox

__all__ = [
    "MAX_ID",
    "STREAM_KINDS",
    "Client",
    "Group",
    "PingOp",
    "Prepared",
    "SubscribeOp",
    "Subscription",
    "UnsubscribeOp",
    "decoder_of",
    "parse_topics",
]

#: The kinds a client may subscribe to (topic prefix ``<kind>.``).
STREAM_KINDS = ("tob", "trade", "signal", "bookstate", "depth", "gap", "ticker", "poll", "lifecycle")
#: Most topics in one subscribe, longest ticker (or ticker prefix) accepted.
MAX_TOPICS = 64
MAX_TICKER_LEN = 200
#: Largest subscription id: what a JavaScript number holds exactly.
MAX_ID = 2**53 - 1

#: kind -> the ticker prefixes taken ("" among them: every market).
Filter = dict[str, tuple[str, ...]]


class Subscription:
    __slots__ = (
        "due_ns",
        "id",
        "id_bytes",
        "interval_ns",
        "kinds",
        "pending",
        "pending_bytes",
        "prefixes",
        "tickers",
    )

    def __init__(self, sub_id: int, prefixes: Filter, tickers: frozenset[str], interval_ms: int) -> None:
        self.id = sub_id
        self.id_bytes = str(sub_id).encode()
        self.kinds = frozenset(prefixes)
        #: Per kind, the ticker prefixes; None where the kind takes every market.
        self.prefixes: dict[str, tuple[str, ...] | None] = {
            k: None if "" in p else p for k, p in prefixes.items()
        }
        #: Empty: every market.
        self.tickers = tickers
        self.interval_ns = interval_ms * 1_000_000
        #: Coalescing: (kind, ticker) -> the newest frame since the last hand-over.
        self.pending: dict[tuple[str, str], bytes] = {}
        self.pending_bytes = 0
        self.due_ns = 0

    def key(self) -> tuple[Any, ...]:
        """What two subscriptions share when they take exactly the same frames."""
        return (self.id, tuple(sorted(self.prefixes.items(), key=lambda kv: kv[0])), self.tickers)

    def wants(self, kind: str, tickers: list[str]) -> bool:
        """Whether a message of ``kind`` about ``tickers`` is this subscription's."""
        prefixes = self.prefixes.get(kind, ())
        if prefixes is not None and not any(t.startswith(prefixes) for t in tickers):
            return False
        return not self.tickers or any(t in self.tickers for t in tickers)

    def hold(self, kind: str, key: str, frame: bytes, limits: Limits) -> bool | None:
        """Keep ``frame`` as the newest of (``kind``, market ``key``) until the next hand-over:
        True when it replaced an older one, False when it is the first, None when the table
        is full (bounded like the queue it feeds: in slots and in bytes)."""
        pending = self.pending
        slot = (kind, key)
        old = pending.get(slot)
        grow = len(frame) - (len(old) if old is not None else 0)
        if (
            old is None and len(pending) >= limits.queue_messages
        ) or self.pending_bytes + grow > limits.queue_bytes:
            return None
        pending[slot] = frame
        self.pending_bytes += grow
        return old is not None

    def topics(self) -> list[str]:
        """The topics as the client is told them, in :data:`STREAM_KINDS` order."""
        out: list[str] = []
        for kind in STREAM_KINDS:
            if kind not in self.prefixes:
                continue
            prefixes = self.prefixes[kind]
            out += [f"{kind}."] if prefixes is None else [f"{kind}.{p}" for p in sorted(prefixes)]
        return out


class Client:
    __slots__ = ("batch", "closing", "id", "outbox", "peer", "subs", "tokens", "tokens_ns", "woken")

    def __init__(
        self, client_id: int, peer: str, outbox: Outbox, limits: Limits, now_ns: int, batch: bool = False
    ) -> None:
        self.id = client_id
        self.peer = peer
        self.outbox = outbox
        #: ``format=ndjson``: several messages per text frame, one per line.
        self.batch = batch
        self.subs: dict[int, Subscription] = {}
        self.tokens = float(limits.ops_burst)
        self.tokens_ns = now_ns
        #: In the core's woken list already (has frames the shell has not been told of).
        self.woken = False
        #: Why the shell must close this client ("" = it need not).
        self.closing = ""


class Prepared(NamedTuple):
    """A bus message converted and encoded once, waiting for its fan-out."""

    kind: str
    tickers: list[str]
    ticker: str | None
    #: ``,"ticker":..,"data":{..}}``: the end of every frame carrying it.
    tail: bytes


class Group:
    """ndjson subscriptions taking the same frames: one payload per batch for all of them."""

    __slots__ = ("frames", "kinds", "members", "sub")

    def __init__(self, sub: Subscription) -> None:
        #: The first member's subscription (they are all alike).
        self.sub = sub
        self.members: list[Client] = []
        self.frames: list[bytes] = []
        self.kinds: dict[str, int] = {}


def parse_topics(topics: list[str]) -> Filter | str:
    """``topics`` as kind -> ticker prefixes, or the first topic refused."""
    out: dict[str, set[str]] = {}
    for topic in topics:
        kind, dot, prefix = topic.partition(".")
        if kind not in STREAM_KINDS or (not dot and prefix) or len(prefix) > MAX_TICKER_LEN:
            return topic
        out.setdefault(kind, set()).add(prefix)
    return {k: tuple(sorted(v)) for k, v in out.items()}


# ---- the requests ------------------------------------------------------------------------------

SubId = Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)]
Ticker = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TICKER_LEN)]


class _OpOnly(msgspec.Struct):
    op: str


class SubscribeOp(msgspec.Struct, forbid_unknown_fields=True):
    op: str
    id: SubId
    topics: Annotated[list[str], msgspec.Meta(min_length=1, max_length=MAX_TOPICS)]
    tickers: list[Ticker] = []
    interval_ms: Annotated[int, msgspec.Meta(ge=0, le=60_000)] = 0


class UnsubscribeOp(msgspec.Struct, forbid_unknown_fields=True):
    op: str
    id: SubId


class PingOp(msgspec.Struct, forbid_unknown_fields=True):
    op: str
    id: SubId | None = None


OP_ONLY = msgspec.json.Decoder(_OpOnly)
DECODERS: dict[str, msgspec.json.Decoder[Any]] = {
    "subscribe": msgspec.json.Decoder(SubscribeOp),
    "unsubscribe": msgspec.json.Decoder(UnsubscribeOp),
    "ping": msgspec.json.Decoder(PingOp),
}


def decoder_of(op: str) -> msgspec.json.Decoder[Any] | None:
    return DECODERS.get(op)
