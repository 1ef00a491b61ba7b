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

__all__ = ["CONTROL_QUEUE", "DropCounts", "Limits", "Outbox", "Policy"]

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


class Outbox:
    """One client's outgoing frames: replies first, then data; bounded, never silently."""

    def __init__(self, limits: Limits, counts: DropCounts) -> None:
        self._limits = limits
        self._counts = counts
        self.control: deque[tuple[str, bytes]] = deque()
        self.data: deque[tuple[int, str, bytes]] = deque()
        self.bytes = 0
        #: Dropped since the last ``lost`` notice, by kind, and when the first of them was.
        self.lost: dict[str, int] = {}
        self.lost_since_ns = 0
        #: Set under the disconnect policy when a frame did not fit: the shell closes the client.
        self.overflowed = False

    def __len__(self) -> int:
        return len(self.control) + len(self.data)

    def _drop(self, kind: str, now_ns: int, n: int = 1) -> None:
        if not self.lost:
            self.lost_since_ns = now_ns
        self.lost[kind] = self.lost.get(kind, 0) + n
        self._counts.add("dropped", kind, n)

    def _overflow(self, offered: int) -> bool:
        """Under the disconnect policy: give up on this client (its queue freed at once); the
        ``offered`` frames that did not fit are dropped with what was queued, all counted."""
        if self._limits.policy != "disconnect":
            return False
        if not self.overflowed:
            self.overflowed = True
            offered += len(self.data) + len(self.control)
            self.data.clear()
            self.control.clear()
            self.bytes = 0
        self._counts.add("dropped", "disconnected", offered)
        return True

    def push(self, sub_id: int, kind: str, frame: bytes, now_ns: int) -> bool:
        """Queue a data frame; False when the client is (now) to be disconnected."""
        if self.overflowed:
            self._counts.add("dropped", "disconnected")  # offered to a client being closed
            return False
        limits = self._limits
        size = len(frame)
        if len(self.data) >= limits.queue_messages or self.bytes + size > limits.queue_bytes:
            if self._overflow(1):
                return False
            while self.data and (
                len(self.data) >= limits.queue_messages or self.bytes + size > limits.queue_bytes
            ):
                _, old_kind, old = self.data.popleft()
                self.bytes -= len(old)
                self._drop(old_kind, now_ns)
            if size > limits.queue_bytes:  # larger than the whole queue: never deliverable
                self._drop(kind, now_ns)
                return True
        self.data.append((sub_id, kind, frame))
        self.bytes += size
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
        self.bytes = sum(len(f) for _, _, f in kept)
        self.data = kept

    def take(self, limit: int) -> list[bytes]:
        """Up to ``limit`` frames to send, in order: replies, the ``lost`` notice, data."""
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
                        "since_ns": self.lost_since_ns,
                    }
                )
            )
            counts.add("lost_notices")
            counts.add("sent", "lost")
            self.lost = {}
        while self.data and len(out) < limit:
            _, kind, frame = self.data.popleft()
            self.bytes -= len(frame)
            counts.add("sent", kind)
            out.append(frame)
        return out
