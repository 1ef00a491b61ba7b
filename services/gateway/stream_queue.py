"""One stream client's bounded outgoing queue, and the limits and counters of the stream (pure).

Each client's queue is bounded in messages and in bytes. When a frame does not fit, the
declared policy decides: ``drop_oldest`` drops the oldest frames and the client next receives
``{"type":"lost","dropped":N,"kinds":{..},"since":..}`` before what is left; ``disconnect``
empties the queue and marks the client for closing. Replies to the client's own requests
(subscribed, errors, pong, heartbeats) have their own small queue, sent first, under the same
policy. Every drop is counted.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

import msgspec

from services.gateway import wire
from shared.config import GatewayConfig
from shared.counts import Counts as DropCounts

__all__ = ["CONTROL_QUEUE", "DropCounts", "Kinds", "Limits", "Outbox", "Policy"]

#: Replies queued for one client (they are small; a client that asks and never reads loses
#: the oldest, counted, like data).
CONTROL_QUEUE = 64

_ENC = msgspec.json.Encoder()
Policy = Literal["drop_oldest", "disconnect"]


@dataclass(frozen=True, slots=True)
class Limits:
    policy: Policy = "drop_oldest"
    queue_bytes: int = 4 * 1024 * 1024
    queue_messages: int = 20_000
    max_clients: int = 256
    max_subscriptions: int = 32
    max_tickers: int = 1000
    max_frame_bytes: int = 64 * 1024
    ops_per_s: float = 20.0
    ops_burst: int = 100

    @classmethod
    def of(cls, cfg: GatewayConfig) -> Limits:
        return cls(
            policy=cfg.stream_policy,
            queue_bytes=cfg.stream_queue_bytes,
            queue_messages=cfg.stream_queue_messages,
            max_clients=cfg.stream_max_clients,
            max_subscriptions=cfg.stream_max_subscriptions,
            max_tickers=cfg.stream_max_tickers,
            max_frame_bytes=cfg.stream_max_frame_bytes,
            ops_per_s=cfg.stream_ops_per_s,
            ops_burst=cfg.stream_ops_burst,
        )


#: What a queued data item holds: one kind (a single message), or (kind, count) pairs (a batch).
Kinds = str | tuple[tuple[str, int], ...]


class Outbox:
    """One client's outgoing frames: replies first, then data; bounded, never silently.

    A data item is one message, or a batch of ``n`` messages already joined (newline-delimited,
    for a ``format=ndjson`` client): the bound counts messages, not items."""

    def __init__(self, limits: Limits, counts: DropCounts) -> None:
        self._limits = limits
        self._counts = counts
        self.control: deque[tuple[str, bytes]] = deque()
        #: (subscription id, kinds, messages in it, payload)
        self.data: deque[tuple[int, Kinds, int, bytes]] = deque()
        self.bytes = 0
        #: Messages in :attr:`data` (a batch counts its own).
        self.messages = 0
        #: Dropped since the last ``lost`` notice, by kind, and when the first of them was.
        self.lost: dict[str, int] = {}
        self.lost_since_ns = 0
        #: Set under the disconnect policy when a frame did not fit: the shell closes the client.
        self.overflowed = False

    def __len__(self) -> int:
        return len(self.control) + self.messages

    def _drop(self, kinds: Kinds, now_ns: int, n: int = 1) -> None:
        if not self.lost:
            self.lost_since_ns = now_ns
        lost, counts = self.lost, self._counts
        if isinstance(kinds, str):
            lost[kinds] = lost.get(kinds, 0) + n
            counts.add("dropped", kinds, n)
            return
        for kind, k in kinds:
            lost[kind] = lost.get(kind, 0) + k
            counts.add("dropped", kind, k)

    def _overflow(self, offered: int) -> bool:
        """Under the disconnect policy: give up on this client (its queue freed at once); the
        ``offered`` frames that did not fit are dropped with what was queued, all counted."""
        if self._limits.policy != "disconnect":
            return False
        if not self.overflowed:
            self.overflowed = True
            offered += self.messages + len(self.control)
            self.data.clear()
            self.control.clear()
            self.bytes = 0
            self.messages = 0
        self._counts.add("dropped", "disconnected", offered)
        return True

    def push(self, sub_id: int, kind: str, frame: bytes, now_ns: int) -> bool:
        """Queue a data frame; False when the client is (now) to be disconnected."""
        return self.push_batch(sub_id, kind, 1, frame, now_ns)

    def push_batch(self, sub_id: int, kinds: Kinds, n: int, payload: bytes, now_ns: int) -> bool:
        """Queue ``n`` messages as one item (``kinds``: their kind, or (kind, count) pairs);
        False when the client is (now) to be disconnected."""
        if self.overflowed:
            self._counts.add("dropped", "disconnected", n)  # offered to a client being closed
            return False
        limits = self._limits
        size = len(payload)
        if self.messages + n > limits.queue_messages or self.bytes + size > limits.queue_bytes:
            if self._overflow(n):
                return False
            if n > limits.queue_messages or size > limits.queue_bytes:  # never deliverable
                self._drop(kinds, now_ns, n)
                return True
            data = self.data
            while data and (
                self.messages + n > limits.queue_messages or self.bytes + size > limits.queue_bytes
            ):
                _, old_kinds, old_n, old = data.popleft()
                self.bytes -= len(old)
                self.messages -= old_n
                self._drop(old_kinds, now_ns, old_n)
        self.data.append((sub_id, kinds, n, payload))
        self.bytes += size
        self.messages += n
        return True

    def push_control(self, kind: str, frame: bytes, now_ns: int) -> bool:
        if self.overflowed:
            self._counts.add("dropped", "disconnected")  # offered to a client being closed
            return False
        if len(self.control) >= CONTROL_QUEUE:
            if self._overflow(1):
                return False
            old_kind, _ = self.control.popleft()
            self._drop(old_kind, now_ns)
        self.control.append((kind, frame))
        return True

    def drop_pending(self, kind: str, now_ns: int, n: int = 1) -> None:
        """Count ``n`` frames lost before they reached the queue (a full coalescing table, or
        the hub's own backlog), under the policy like a full queue."""
        if self._limits.policy == "disconnect":
            self._overflow(n)
        else:
            self._drop(kind, now_ns, n)

    def purge(self, sub_id: int) -> None:
        """Forget the queued frames of an ended subscription (not a loss: the client asked)."""
        kept = deque(item for item in self.data if item[0] != sub_id)
        self.bytes = sum(len(item[3]) for item in kept)
        self.messages = sum(item[2] for item in kept)
        self.data = kept

    def take(self, limit: int, max_bytes: int = 1 << 62) -> list[bytes]:
        """Up to ``limit`` items to send, in order: replies, the ``lost`` notice, data; data
        stops once ``max_bytes`` are taken (one item at least)."""
        out: list[bytes] = []
        counts = self._counts
        while self.control and len(out) < limit:
            kind, frame = self.control.popleft()
            counts.add("sent", kind)
            out.append(frame)
        if self.lost and len(out) < limit:
            out.append(
                _ENC.encode(
                    {
                        "type": "lost",
                        "dropped": sum(self.lost.values()),
                        "kinds": self.lost,
                        "since": wire.iso_ns(self.lost_since_ns),
                        "since_ns": str(self.lost_since_ns),
                    }
                )
            )
            counts.add("lost_notices")
            counts.add("sent", "lost")
            self.lost = {}
        data = self.data
        taken = 0
        while data and len(out) < limit and taken < max_bytes:
            _, kinds, n, frame = data.popleft()
            self.bytes -= len(frame)
            self.messages -= n
            taken += len(frame)
            if isinstance(kinds, str):
                counts.add("sent", kinds, n)
            else:
                for kind, k in kinds:
                    counts.add("sent", kind, k)
            out.append(frame)
        return out
