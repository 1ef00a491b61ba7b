"""The JetStream source's pure core: what a delivered message holds, and when it may be acked.

No sockets, no clocks, no metrics: ``source_jetstream`` decodes each delivery with
:func:`decode_frame`, hands it to :meth:`CommitAcks.track` with the streams it carries, and after
each commit acks what :meth:`CommitAcks.ackable` returns.

The ack rule: a delivery is acked only once, for every stream (publisher, epoch, kind) it holds,
the committed position reached its highest seq. A delivery of nothing the writer stores is acked
at once; one that never gets covered (a message the core deferred behind a hole) stays until the
consumer is reset, when :meth:`CommitAcks.clear` drops every tracked delivery: the reset consumer
delivers them all again from its ack floor, and the committed positions drop the duplicates.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Mapping
from typing import Generic, TypeVar

from services.writer.core import TAG, StreamKey
from shared.config import Config
from shared.messages import BATCH_DECODER, DECODE_ERRORS, Message

H = TypeVar("H")


def decode_frame(payload: bytes) -> list[Message] | str:
    """The messages of one bus frame (the writer's own decoder), or why it is poison."""
    try:
        msgs = BATCH_DECODER.decode(payload)
    except DECODE_ERRORS as exc:
        return f"undecodable: {str(exc)[:200]}"
    if not msgs:
        return "empty frame"
    return msgs


def needs_of(msgs: Iterable[Message], stored: Callable[[type], bool]) -> dict[StreamKey, int]:
    """Per stored stream in ``msgs``, its highest seq: what must be committed before the ack."""
    out: dict[StreamKey, int] = {}
    for m in msgs:
        cls = type(m)
        if not stored(cls):
            continue
        key = (m.pub, m.epoch, TAG[cls])
        if m.seq > out.get(key, 0):
            out[key] = m.seq
    return out


def start_seq(ack_floor: int | None) -> int | None:
    """Where a reset consumer starts (a stream seq), from its predecessor's ack floor; None: the
    stream's first message (no consumer yet, or nothing acked)."""
    if ack_floor is None or ack_floor <= 0:
        return None
    return ack_floor + 1


class _Tracked(Generic[H]):
    __slots__ = ("handle", "msgs", "needs")

    def __init__(self, handle: H, needs: dict[StreamKey, int], msgs: int) -> None:
        self.handle = handle
        self.needs = needs
        self.msgs = msgs


class CommitAcks(Generic[H]):
    """Deliveries not yet acked, each waiting on the committed positions it needs."""

    def __init__(self, max_frames: int, max_msgs: int) -> None:
        self.max_frames = max_frames
        self.max_msgs = max_msgs
        #: stream -> heap of (seq that must be committed, order, delivery)
        self._waiting: dict[StreamKey, list[tuple[int, int, _Tracked[H]]]] = {}
        self._order = itertools.count()
        self.frames = 0
        self.msgs = 0

    def room(self) -> int:
        """Deliveries that may be fetched now (0 while the bound is reached)."""
        if self.msgs >= self.max_msgs:
            return 0
        return max(0, self.max_frames - self.frames)

    def track(
        self, handle: H, needs: dict[StreamKey, int], msgs: int, committed: Mapping[StreamKey, int]
    ) -> bool:
        """Hold ``handle`` until ``needs`` is committed; True: it already is (ack it now)."""
        key = _unmet(needs, committed)
        if key is None:
            return True
        entry = _Tracked(handle, needs, msgs)
        self._push(key, entry)
        self.frames += 1
        self.msgs += msgs
        return False

    def _push(self, key: StreamKey, entry: _Tracked[H]) -> None:
        heapq.heappush(self._waiting.setdefault(key, []), (entry.needs[key], next(self._order), entry))

    def ackable(self, committed: Mapping[StreamKey, int], keys: Iterable[StreamKey]) -> list[H]:
        """The deliveries a commit that moved ``keys`` has covered (in no particular order)."""
        out: list[H] = []
        for key in keys:
            heap = self._waiting.get(key)
            done = committed.get(key, 0)
            while heap and heap[0][0] <= done:
                entry = heapq.heappop(heap)[2]
                other = _unmet(entry.needs, committed)
                if other is not None:  # a frame of several streams: wait on the next one
                    self._push(other, entry)
                    continue
                self.frames -= 1
                self.msgs -= entry.msgs
                out.append(entry.handle)
            if heap is not None and not heap:
                del self._waiting[key]
        return out

    def clear(self) -> int:
        """Forget every tracked delivery (the consumer is reset); how many there were."""
        dropped = self.frames
        self._waiting.clear()
        self.frames = 0
        self.msgs = 0
        return dropped


def _unmet(needs: Mapping[StreamKey, int], committed: Mapping[StreamKey, int]) -> StreamKey | None:
    for key, seq in needs.items():
        if committed.get(key, 0) < seq:
            return key
    return None


class InOrder(Generic[H]):
    """Deliveries of each stream handed on in seq order: one that starts past a hole waits.

    JetStream's order is not always the publisher's: the bridge re-sends a record whose PubAck it
    lost (it lands after newer ones), and a delivery lost on a reconnect comes again only after
    ``ack_wait``. The core drops a seq at or below its position, so what comes after a hole is held
    here until the hole fills; one that does not fill is the shell's to settle (:meth:`stalled`,
    then a reset or :meth:`give_up`, when the core counts the missing seqs lost).
    """

    def __init__(self, position: Callable[[StreamKey], int]) -> None:
        #: The core's accepted position of a stream (what it has, or has been handed).
        self.position = position
        self._high: dict[StreamKey, int] = {}
        self._held: dict[StreamKey, list[tuple[int, int, H, int]]] = {}  # (first, order, frame, last)
        #: stream -> when its current hole was first waited on (the shell's clock)
        self._since: dict[StreamKey, float] = {}
        self._order = itertools.count()
        self.held = 0

    def next_seq(self, key: StreamKey) -> int:
        return max(self.position(key), self._high.get(key, 0)) + 1

    def add(self, key: StreamKey | None, first: int, last: int, frame: H, now: float) -> list[H]:
        """What may go to the core now (``frame``, and held ones it unblocks); ``key`` None: a
        frame of no stream or of several (not a bus frame's shape), never held."""
        if key is None:
            return [frame]
        if first > self.next_seq(key):
            heapq.heappush(self._held.setdefault(key, []), (first, next(self._order), frame, last))
            self.held += 1
            self._since.setdefault(key, now)
            return []
        self._raise(key, last)
        return [frame, *self._release(key, now, everything=False)]

    def _raise(self, key: StreamKey, last: int) -> None:
        if last > self._high.get(key, 0):
            self._high[key] = last

    def _release(self, key: StreamKey, now: float, *, everything: bool) -> list[H]:
        heap = self._held.get(key)
        out: list[H] = []
        while heap and (everything or heap[0][0] <= self.next_seq(key)):
            _, _, frame, last = heapq.heappop(heap)
            self.held -= 1
            self._raise(key, last)
            out.append(frame)
        if not heap:
            self._held.pop(key, None)
            self._since.pop(key, None)
        elif out:
            self._since[key] = now  # a hole further on: it waits from now
        return out

    def stalled(self, now: float, grace_s: float) -> list[tuple[StreamKey, int]]:
        """(stream, first missing seq) of every hole waited on for ``grace_s`` or longer."""
        return [(k, self.next_seq(k)) for k, t in self._since.items() if now - t >= grace_s]

    def oldest(self) -> tuple[StreamKey, int] | None:
        """The hole waited on longest, if any."""
        if not self._since:
            return None
        key = min(self._since, key=self._since.__getitem__)
        return key, self.next_seq(key)

    def give_up(self, key: StreamKey) -> list[H]:
        """Every frame held behind ``key``'s hole, in seq order: the hole is accepted."""
        return self._release(key, 0.0, everything=True)

    def clear(self) -> None:
        self._high.clear()
        self._held.clear()
        self._since.clear()
        self.held = 0


def single_stream(msgs: list[Message], needs: dict[StreamKey, int]) -> tuple[StreamKey | None, int]:
    """The one stored stream of a frame and its first seq; (None, 0) for none or several."""
    if len(needs) != 1:
        return None, 0
    (key,) = needs
    return key, min(m.seq for m in msgs if (m.pub, m.epoch, TAG[type(m)]) == key)


def config_problems(config: Config) -> list[str]:
    """What keeps a writer with ``source = "jetstream"`` from starting, one line each."""
    if config.writer.source != "jetstream":
        return []
    problems = []
    if not config.jetstream.servers:
        problems.append('[writer] source = "jetstream" needs [jetstream] servers (nats://host:port)')
    if not config.jetstream.streams:
        problems.append('[writer] source = "jetstream" needs [jetstream] streams to consume')
    return problems
