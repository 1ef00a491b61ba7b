"""The ZeroMQ bus: Publisher, Subscriber (the proxy: :mod:`shared.bus_proxy`).

Topology: one proxy binds XSUB (publishers connect) and XPUB (subscribers
connect). A frame is ``[topic, payload]``; ``payload`` is a msgpack array of
messages that share the topic (see :mod:`shared.messages`).

The publisher stamps ``pub``/``epoch``/``seq`` (per kind), journals durable
messages before sending them (when given a journal), and groups consecutive
messages with the same topic into one frame. The subscriber drains every ready
frame per wake-up, checks per (publisher, epoch, kind) continuity for the kinds
it takes whole, and counts every gap in ``kxfeed_bus_dropped_total`` (bar those of a new
subscription's hand-over: :data:`JOIN_SETTLE_S`).

Beyond loopback every socket here is CURVE (:mod:`shared.curve`): the proxy's two are servers
admitting only ``[curve] allowed_clients``, publishers and subscribers are its clients; loopback
and ``ipc://`` sockets are untouched.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import zmq
from msgspec.structs import force_setattr
from prometheus_client import Counter

# The proxy and its limits live in bus_proxy; importers take them from here too.
from shared.bus_proxy import MAX_MSG_BYTES, SUBSCRIPTION_MAX_BYTES, Proxy, bind_proxy  # noqa: F401
from shared.curve import Curve, current
from shared.log import BurstLog, get_logger
from shared.messages import BATCH_DECODER, BATCH_ENCODER, DECODE_ERRORS, KINDS, TOPIC_FIELDS, Message

PUBLISHED = Counter("kxfeed_bus_published_total", "Messages published to the bus", ["kind"])
RECEIVED = Counter("kxfeed_bus_received_total", "Messages received from the bus", ["kind"])
DROPPED = Counter(
    "kxfeed_bus_dropped_total", "Messages lost between a publisher and this subscriber", ["kind", "publisher"]
)
BAD_PAYLOADS = Counter("kxfeed_bus_bad_payloads_total", "Bus frames that did not decode (skipped)")
_log = get_logger("bus")
#: A new subscription reaches each publisher at its own moment, and publishers filter on their
#: side: a whole-kind subscriber that joins a running stream another subscriber only takes in
#: part (``tob.KXNFL`` vs ``tob.``) first sees that part, then everything. Seq gaps that soon
#: after joining are that hand-over, not losses, and re-baseline instead of counting as drops.
JOIN_SETTLE_S = 1.0
#: Message class -> kind tag: a dict lookup per received frame instead of a property call.
_KIND_OF: dict[type, str] = {cls: kind for kind, cls in KINDS.items()}
#: Message class -> (``"<kind>."``, the field its topic ends with), for every class whose topic
#: is that (not Gap's).
_TOPIC_OF: dict[type, tuple[str, str]] = {cls: (f"{_KIND_OF[cls]}.", f) for cls, f in TOPIC_FIELDS.items()}


class RecordSink(Protocol):
    """Where a durable publisher writes frame payloads before sending them (the journal)."""

    def append(self, records: list[bytes]) -> None: ...


def stamp(msgs: Iterable[Message], pub: str, epoch: int, after: int = 0) -> int:
    """Stamp messages of one kind as their publisher: ``pub``, ``epoch`` and seq ``after`` + 1,
    + 2, ...; the last seq given."""
    seq = after
    for m in msgs:
        seq += 1
        force_setattr(m, "pub", pub)
        force_setattr(m, "epoch", epoch)
        force_setattr(m, "seq", seq)
    return seq


class Publisher:
    """Stamps, journals and sends messages. Not thread-safe: one per event loop/thread.

    The socket is an XPUB connected to the proxy's XSUB, so the publisher can see
    subscriptions arrive (:meth:`wait_for_subscriber`), which removes the slow-joiner
    guesswork in tests and start-up.
    """

    def __init__(
        self,
        ctx: zmq.Context[zmq.Socket[bytes]],
        endpoint: str,
        pub_id: str,
        *,
        epoch: int | None = None,
        sndhwm: int = 1_000_000,
        journal: RecordSink | None = None,
        curve: Curve | None = None,
    ) -> None:
        self.pub_id = pub_id
        self.epoch = time.time_ns() if epoch is None else epoch
        self.journal = journal
        self._seq: dict[str, int] = {}
        self._sock = ctx.socket(zmq.XPUB)
        self._sock.setsockopt(zmq.SNDHWM, sndhwm)
        self._sock.setsockopt(zmq.LINGER, 2000)
        (curve or current()).dial(self._sock, endpoint, "bus_xsub_client")
        self._sock.connect(endpoint)
        self._subs: set[bytes] = set()
        self._counters: dict[str, Counter] = {}

    def publish(self, msg: Message) -> None:
        self.publish_many((msg,))

    def publish_many(self, msgs: Iterable[Message]) -> int:
        """Send messages in order, one frame per run of equal topics. Returns frames sent.

        Durable frames of the call go to the journal in one append *before* any is sent:
        what a subscriber saw is always on disk.
        """
        frames: list[tuple[bytes, bytes, str, int]] = []
        durable: list[bytes] = []
        topic_of = _TOPIC_OF
        run: list[Message] = []
        run_topic = ""
        for m in msgs:
            # The topic built here rather than by a method call per message (Gap has its own).
            how = topic_of.get(type(m))
            topic = m.topic() if how is None else how[0] + getattr(m, how[1])
            if topic != run_topic:
                if run:
                    frames.append(self._frame(run_topic, run, durable))
                run = []
                run_topic = topic
            run.append(m)
        if run:
            frames.append(self._frame(run_topic, run, durable))
        if durable and self.journal is not None:
            self.journal.append(durable)
        # Two plain sends per frame and one counter update per kind: send_multipart and a
        # counter call per frame cost more than encoding the frame.
        send = self._sock.send
        counts: dict[str, int] = {}
        for topic_b, payload, kind, n in frames:
            send(topic_b, zmq.SNDMORE)
            send(payload)
            counts[kind] = counts.get(kind, 0) + n
        for kind, n in counts.items():
            counter = self._counters.get(kind)
            if counter is None:
                counter = self._counters[kind] = PUBLISHED.labels(kind)
            counter.inc(n)
        return len(frames)

    def _frame(self, topic: str, run: list[Message], durable: list[bytes]) -> tuple[bytes, bytes, str, int]:
        """Stamp a run of one topic (so one kind) and encode it as one frame's payload."""
        first = run[0]
        kind = _KIND_OF[type(first)]
        seq = self._seq.get(kind, 0)
        pub_id, epoch = self.pub_id, self.epoch
        for m in run:
            seq += 1
            force_setattr(m, "pub", pub_id)
            force_setattr(m, "epoch", epoch)
            force_setattr(m, "seq", seq)
        self._seq[kind] = seq
        payload = BATCH_ENCODER.encode(run)
        if first.durable:
            durable.append(payload)
        return topic.encode(), payload, kind, len(run)

    def next_seq(self, kind: str) -> int:
        """The seq the next message of ``kind`` will get."""
        return self._seq.get(kind, 0) + 1

    def _poll_subs(self) -> None:
        while True:
            try:
                frame = self._sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if frame[:1] == b"\x01":
                self._subs.add(frame[1:])
            elif frame[:1] == b"\x00":
                self._subs.discard(frame[1:])

    def has_subscriber(self, topic: str) -> bool:
        self._poll_subs()
        t = topic.encode()
        return any(t.startswith(s) for s in self._subs)

    async def wait_for_subscriber(self, topic: str, timeout: float = 5.0) -> bool:
        """True once some subscriber's prefix matches ``topic`` (False on timeout)."""
        deadline = time.monotonic() + timeout
        while not self.has_subscriber(topic):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    def wait_for_subscriber_sync(self, topic: str, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while not self.has_subscriber(topic):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self, linger_ms: int = 2000) -> None:
        self._sock.close(linger_ms)


DropHandler = Callable[[str, int, str, int, int], None]  # (publisher, epoch, kind, first_missing, count)


class Subscriber:
    """Prefix subscription with typed decode, drain-per-wake-up and drop detection."""

    def __init__(
        self,
        ctx: zmq.Context[zmq.Socket[bytes]],
        endpoint: str,
        prefixes: Iterable[str],
        *,
        rcvhwm: int = 1_000_000,
        max_batch: int = 10_000,
        on_drop: DropHandler | None = None,
        join_settle_s: float = JOIN_SETTLE_S,
        curve: Curve | None = None,
    ) -> None:
        self.prefixes = list(prefixes)
        self.join_settle_s = join_settle_s
        self.max_batch = max_batch
        self.on_drop = on_drop
        self.dropped = 0
        self.bad_payloads = 0
        self._sock = ctx.socket(zmq.SUB)
        self._sock.setsockopt(zmq.RCVHWM, rcvhwm)
        self._sock.setsockopt(zmq.LINGER, 0)
        # No ZMQ_MAXMSGSIZE here (see MAX_MSG_BYTES): the proxy refuses oversized messages.
        for p in self.prefixes:
            self._sock.setsockopt(zmq.SUBSCRIBE, p.encode())
        (curve or current()).dial(self._sock, endpoint, "bus_xpub_client")
        self._sock.connect(endpoint)
        self._whole_kinds = self._kinds_taken_whole(self.prefixes)
        self._last: dict[tuple[str, int, str], int] = {}
        self._settling = dict.fromkeys(self._whole_kinds, time.monotonic() + join_settle_s)
        self._joined: set[tuple[str, int, str]] = set()
        self._burst = BurstLog(_log)
        self._ready: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._received: dict[str, Counter] = {}

    @staticmethod
    def _kinds_taken_whole(prefixes: Sequence[str]) -> frozenset[str]:
        if "" in prefixes:
            return frozenset(KINDS)
        return frozenset(k for k in KINDS if k in prefixes or f"{k}." in prefixes)

    def subscribe(self, prefix: str) -> None:
        self._sock.setsockopt(zmq.SUBSCRIBE, prefix.encode())
        self.prefixes.append(prefix)
        before = self._whole_kinds
        self._whole_kinds = self._kinds_taken_whole(self.prefixes)
        for kind in self._whole_kinds - before:
            self._settling[kind] = time.monotonic() + self.join_settle_s

    def _count(self, counts: dict[str, int]) -> None:
        # One counter update per kind per drain, not per frame: it is a lock and a call each.
        for kind, n in counts.items():
            counter = self._received.get(kind)
            if counter is None:
                counter = self._received[kind] = RECEIVED.labels(kind)
            counter.inc(n)

    def _drop(self, key: tuple[str, int, str], first_missing: int, count: int) -> None:
        pub, epoch, kind = key
        self.dropped += count
        DROPPED.labels(kind, pub).inc(count)
        self._burst.event(
            f"{pub}/{kind}",
            "bus messages dropped",
            amount=count,
            publisher=pub,
            epoch=epoch,
            kind=kind,
            first_missing_seq=first_missing,
        )
        if self.on_drop is not None:
            self.on_drop(pub, epoch, kind, first_missing, count)

    def _joining(self, key: tuple[str, int, str], skipped: int) -> bool:
        """True when a gap is this subscription's hand-over (see :data:`JOIN_SETTLE_S`)."""
        until = self._settling.get(key[2])
        if until is None:
            return False
        if time.monotonic() >= until:
            del self._settling[key[2]]
            return False
        if key not in self._joined:  # once per stream: the hand-over can leave several gaps
            self._joined.add(key)
            _log.info(
                "joined a running stream: seqs sent before the subscription reached the publisher skipped",
                extra={"ctx": {"publisher": key[0], "kind": key[2], "skipped": skipped}},
            )
        return True

    def last_seq(self, pub: str, epoch: int, kind: str) -> int | None:
        return self._last.get((pub, epoch, kind))

    def drain(self, limit: int | None = None) -> list[Message]:
        """Every message ready now (up to ``limit``), without waiting."""
        limit = self.max_batch if limit is None else limit
        out: list[Message] = []
        counts: dict[str, int] = {}
        # Written out inline with locals: this runs once per frame, and the method call and
        # ``kind`` property it replaced were a fifth of a busy subscriber's time.
        recv = self._sock.recv
        decode = BATCH_DECODER.decode
        whole = self._whole_kinds
        last_seq = self._last
        n = 0
        while n < limit:
            try:
                topic = recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            # Frame.more instead of recv_multipart: its getsockopt(RCVMORE) per part cost more
            # than the rest of the frame's handling. The parts of a message arrive together.
            if not topic.more:
                self._bad("expected 2 frames, got 1")
                continue
            part = recv(zmq.NOBLOCK, copy=False)
            if part.more:
                parts = 2
                while part.more:
                    part = recv(zmq.NOBLOCK, copy=False)
                    parts += 1
                self._bad(f"expected 2 frames, got {parts}")
                continue
            try:
                batch = decode(part.buffer)
            except DECODE_ERRORS as exc:
                self._bad(str(exc), topic=topic.bytes[:80].decode(errors="replace"))
                continue
            if not batch:
                continue
            first = batch[0]
            kind = _KIND_OF[type(first)]
            size = len(batch)
            counts[kind] = counts.get(kind, 0) + size
            n += size
            if size == 1:
                out.append(first)
            else:
                out.extend(batch)
            if kind not in whole:
                continue
            key = (first.pub, first.epoch, kind)
            last = last_seq.get(key)
            # The first frame seen from a stream sets the baseline: a late joiner missed history,
            # it did not drop it (it catches up by asking: snapshots, journal replay).
            if last is not None and first.seq > last + 1 and not self._joining(key, first.seq - last - 1):
                self._drop(key, last + 1, first.seq - last - 1)
            last_seq[key] = batch[-1].seq
        self._count(counts)
        return out

    def _bad(self, why: str, **ctx: Any) -> None:
        self.bad_payloads += 1
        BAD_PAYLOADS.inc()
        self._burst.event("bad-payload", "undecodable bus frame skipped", why=why, **ctx)

    def _fd(self) -> int:
        return int(self._sock.getsockopt(zmq.FD))

    def _on_readable(self) -> None:
        # The zmq FD is edge-triggered: reading EVENTS re-arms it, so the loop does not spin.
        self._sock.getsockopt(zmq.EVENTS)
        if self._ready is not None:
            self._ready.set()

    async def recv(self) -> list[Message]:
        """Wait for at least one message, then return everything ready (drained)."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._ready = asyncio.Event()
            self._loop.add_reader(self._fd(), self._on_readable)
        assert self._ready is not None
        while True:
            out = self.drain()
            if out:
                return out
            self._ready.clear()
            if int(self._sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
                continue
            await self._ready.wait()

    def recv_blocking(self, timeout_s: float) -> list[Message]:
        """Synchronous variant for CLIs and tests: [] on timeout."""
        if self._sock.poll(int(timeout_s * 1000), zmq.POLLIN):
            return self.drain()
        return []

    def close(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._fd())
        self._burst.flush()
        self._sock.close(0)
