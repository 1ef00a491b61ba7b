"""``[writer] source = "jetstream"``: the writer fed by a JetStream durable pull consumer.

One durable consumer per ``[jetstream] streams`` stream (the bridge's retention classes). Each
delivery is a bus frame, byte for byte, decoded by the writer's own decoder and offered to the
same core as bus frames; batches go through the same store. The ledger (:mod:`jsack`) acks a
delivery only after the transaction that stored it committed, so a writer killed at any moment
has its uncommitted deliveries sent again, and the committed stream positions (the same keys as
the bus path) drop whatever was already stored.

Out-of-order delivery is what could lose data here: the core drops a seq at or below its
position. JetStream redelivers an unacked message after ``ack_wait`` *beside* newer ones, so the
consumer is reset to deliver strictly in order from its ack floor (deleted and created again
there) at the start and whenever the core asks for a replay (a hole in a stream, an overflow).
A hole still there after a reset is gone from the stream (``max_age``): counted lost, as on the
bus path. A poison delivery (not a bus frame) is counted, logged and terminated (``term``): it
would fail the same way on every redelivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError
from prometheus_client import Counter, Gauge

from services.writer.core import StreamKey
from services.writer.jsack import CommitAcks, InOrder, decode_frame, needs_of, single_stream, start_seq
from services.writer.rows import MAPPERS
from shared import jetstream as js
from shared.backoff import Backoff
from shared.config import WriterConfig
from shared.jetstream_config import JetStreamConfig
from shared.log import BurstLog
from shared.messages import Message

REDELIVERED = Counter(
    "kxfeed_writer_jetstream_redeliveries_total",
    "JetStream deliveries that were a redelivery (not acked in ack_wait, or a lost ack)",
)
POISON = Counter(
    "kxfeed_writer_jetstream_poison_total", "JetStream messages that are no bus frame, terminated (term)"
)
NATS_ERRORS = Counter(
    "kxfeed_writer_jetstream_errors_total", "NATS failures (each retried with backoff), by operation", ["op"]
)
ACKED = Counter("kxfeed_writer_jetstream_acks_total", "JetStream deliveries acked after their commit")
RESETS = Counter(
    "kxfeed_writer_jetstream_resets_total",
    "Consumers re-created at their ack floor (re-delivery in stream order), by reason: hole, "
    "reconnect, control (the core asked: a replay command)",
    ["reason"],
)
INFLIGHT = Gauge("kxfeed_writer_jetstream_inflight", "JetStream deliveries received and not yet acked")
#: Deliveries asked for per fetch, at most; a fetch with nothing to deliver returns after FETCH_S.
FETCH_MAX = 256
FETCH_S = 1.0


class JetStreamSource:
    """The writer's input (``worker.Input``) from JetStream, and the acks of what it committed."""

    def __init__(
        self,
        wc: WriterConfig,
        jc: JetStreamConfig,
        name: str,
        log: logging.Logger,
        committed: Mapping[StreamKey, int],
        position: Callable[[StreamKey], int],
    ) -> None:
        self.wc = wc
        self.jc = jc
        self.name = name
        self.log = log
        self.burst = BurstLog(log)
        #: The core's committed positions (the dict itself: commits update it in place).
        self.committed = committed
        self.max_batch = 2048  # messages per read, as the worker's bus reads (READ_CHUNK)
        # Below the core's buffer bound, so fetching stops before the core would shed.
        self.ledger: CommitAcks[Msg] = CommitAcks(wc.jetstream_max_inflight, max(1, wc.max_buffer_rows // 2))
        self._frames: deque[list[Message]] = deque()
        self.order: InOrder[list[Message]] = InOrder(position)
        #: Holes a reset was already tried on (stream, first missing seq): the next stall gives up.
        self._tried: set[tuple[StreamKey, int]] = set()
        #: (stream, stream seq) of the poison messages seen (bounded like _tried).
        self._poisoned: set[tuple[str, int]] = set()
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._acks: deque[tuple[Msg, bool]] = deque()
        self._ack_ready = asyncio.Event()
        #: Bumped by every reset: a stream loop re-creates its consumer when it changed.
        self.generation = 0
        self.nc: Client | None = None
        self._connecting = asyncio.Lock()
        self.counts = {
            "js_redelivered": 0,
            "js_poison": 0,
            "js_errors": 0,
            "js_acked": 0,
            "js_resets": 0,
            "js_holes_given_up": 0,
        }

    # ---- Input -------------------------------------------------------------------------------
    async def recv(self) -> list[Message]:
        while not self._frames:
            self._ready.clear()
            await self._ready.wait()
        return self.drain()

    def drain(self) -> list[Message]:
        out: list[Message] = []
        while self._frames and len(out) < self.max_batch:
            out.extend(self._frames.popleft())
        return out

    def close(self) -> None:
        """Nothing synchronous to close: :meth:`aclose` ends the connection."""

    # ---- resets and acks -----------------------------------------------------------------------
    def reset(self, reason: str, **ctx: Any) -> None:
        """Every consumer starts again from its ack floor; nothing delivered before counts."""
        self.generation += 1
        dropped = self.ledger.clear()
        self._frames.clear()
        self.order.clear()
        self._acks = deque(a for a in self._acks if a[1])  # terms stay: poison is poison
        self.counts["js_resets"] += 1
        RESETS.labels(reason).inc()
        self._room.set()
        self.log.info(
            "jetstream: consumers reset to their ack floor",
            extra={
                "ctx": {"reason": reason, "unacked_dropped": dropped, "generation": self.generation, **ctx}
            },
        )

    def committed_keys(self, keys: list[StreamKey]) -> None:
        """A batch moving ``keys`` committed: ack every delivery it covered."""
        done = self.ledger.ackable(self.committed, keys)
        if done:
            self._acks.extend((msg, False) for msg in done)
            self._ack_ready.set()
            self._room.set()

    async def ack_loop(self) -> None:
        while True:
            await self._ack_ready.wait()
            self._ack_ready.clear()
            while self._acks:
                msg, term = self._acks.popleft()
                try:
                    await (msg.term() if term else msg.ack())
                except NatsError as exc:  # not acked: delivered again, and dropped as a duplicate
                    self._error("ack", exc)
                    continue
                if not term:
                    ACKED.inc()
                    self.counts["js_acked"] += 1
            INFLIGHT.set(self.ledger.frames)

    # ---- NATS ----------------------------------------------------------------------------------
    async def _connect(self) -> Client:
        async with self._connecting:
            if self.nc is not None:
                return self.nc
            opts: dict[str, Any] = {
                "servers": list(self.jc.servers),
                "name": self.name,
                "allow_reconnect": True,
                "max_reconnect_attempts": -1,
                "reconnect_time_wait": self.jc.retry_initial_s,
                "connect_timeout": 2,
                "ping_interval": self.jc.ping_interval_s,
                "max_outstanding_pings": self.jc.max_outstanding_pings,
                "error_cb": self._on_error,
                "disconnected_cb": self._on_disconnect,
                "reconnected_cb": self._on_reconnect,
            }
            if self.jc.creds_file:
                opts["user_credentials"] = self.jc.creds_file
            self.nc = await nats.connect(**opts)
            url = self.nc.connected_url  # host and port only: a URL may carry a password
            where = f"{url.hostname}:{url.port}" if url else ""
            ctx = {"server": where, "durable": self.durable}
            self.log.info("jetstream: connected to NATS", extra={"ctx": ctx})
            return self.nc

    async def _on_error(self, exc: Exception) -> None:
        self._error("connection", exc)

    async def _on_disconnect(self) -> None:
        # nats-py reconnects by itself; what was delivered and not acked comes again.
        self._error("disconnected", ConnectionError("NATS connection lost"))

    async def _on_reconnect(self) -> None:
        # Deliveries sent while the connection was down are lost on the way and would only come
        # again after ack_wait, behind newer ones: start again from the ack floor instead.
        self.reset("reconnect")

    @property
    def durable(self) -> str:
        return self.wc.jetstream_durable

    async def _bind(self, nc: Client, stream: str) -> JetStreamContext.PullSubscription:
        """The consumer of ``stream`` created again at its ack floor: delivery in stream order."""
        jsm = nc.jsm()
        floor: int | None = None
        try:
            info = await jsm.consumer_info(stream, self.durable)
            floor = info.ack_floor.stream_seq if info.ack_floor is not None else 0
            await jsm.delete_consumer(stream, self.durable)
        except NotFoundError:
            floor = None  # a first start; or the stream is missing, which add_consumer says
        start = start_seq(floor)
        await jsm.add_consumer(
            stream,
            ConsumerConfig(
                durable_name=self.durable,
                deliver_policy=DeliverPolicy.ALL if start is None else DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=start,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=self.wc.jetstream_ack_wait_s,
                max_ack_pending=self.wc.jetstream_max_inflight,
            ),
        )
        self.log.info("jetstream: consumer bound", extra={"ctx": {"stream": stream, "start_seq": start or 1}})
        return await nc.jetstream().pull_subscribe_bind(durable=self.durable, stream=stream)

    async def stream_loop(self, stream: str) -> None:
        """Fetch ``stream``'s deliveries while the ledger has room; NATS failures are retried."""
        backoff = Backoff(self.jc.retry_initial_s, max(self.jc.retry_max_s, self.jc.retry_initial_s))
        sub: JetStreamContext.PullSubscription | None = None
        bound = -1
        while True:
            try:
                nc = await self._connect()
                if sub is None or bound != self.generation:
                    if sub is not None:
                        await _quietly_unsubscribe(sub)
                        sub = None
                    bound = self.generation
                    sub = await self._bind(nc, stream)
                    if bound != self.generation:
                        continue  # reset again meanwhile
                room = self.ledger.room()
                if room == 0:
                    self._settle_holes(full=True)
                    self._room.clear()
                    await _wait(self._room, FETCH_S)
                    continue
                try:
                    got = await sub.fetch(min(room, FETCH_MAX), timeout=FETCH_S)
                except NatsTimeout:
                    if not nc.is_connected:
                        raise
                    backoff.reset()
                    self._settle_holes(full=False)
                    continue
                if bound != self.generation:
                    continue  # from the consumer a reset replaced: it delivers them again
                for msg in got:
                    self._take(stream, msg)
                self._settle_holes(full=False)
                backoff.reset()
            except asyncio.CancelledError:
                raise
            except (NatsError, OSError, TimeoutError) as exc:
                op = "connect" if self.nc is None else "fetch" if sub is not None else "bind"
                self._error(op, exc, stream=stream)
                if isinstance(exc, NotFoundError):
                    sub = None  # the stream or consumer went away: bind again
                await asyncio.sleep(backoff.delay())

    def _take(self, stream: str, msg: Msg) -> None:
        try:
            meta = msg.metadata
        except (NatsError, ValueError, IndexError):
            meta = None
        stream_seq = meta.sequence.stream if meta is not None else 0
        if meta is not None and meta.num_delivered > 1:
            REDELIVERED.inc()
            self.counts["js_redelivered"] += 1
            self.burst.event(
                f"redelivered/{stream}",
                "jetstream: a delivery came again (not acked within ack_wait)",
                stream=stream,
                stream_seq=stream_seq,
                delivered=meta.num_delivered,
            )
        frame = decode_frame(msg.data)
        if isinstance(frame, str):
            # A reset to an ack floor below it delivers it again: counted once.
            if (stream, stream_seq) not in self._poisoned or not stream_seq:
                if len(self._poisoned) > 100_000:
                    self._poisoned.clear()
                self._poisoned.add((stream, stream_seq))
                POISON.inc()
                self.counts["js_poison"] += 1
                headers = msg.headers or {}
                self.burst.event(
                    f"poison/{stream}",
                    "jetstream: a message that is no bus frame; terminated",
                    error=frame,
                    stream=stream,
                    stream_seq=stream_seq,
                    subject=msg.subject[:200],
                    msg_id=str(headers.get(js.MSG_ID_HEADER, ""))[:200],
                )
            self._acks.append((msg, True))
            self._ack_ready.set()
            return
        needs = needs_of(frame, MAPPERS.__contains__)
        if self.ledger.track(msg, needs, len(frame), self.committed):
            self._acks.append((msg, False))
            self._ack_ready.set()
        key, first = single_stream(frame, needs)
        ready = self.order.add(key, first, needs.get(key, 0) if key else 0, frame, time.monotonic())
        if ready:
            self._frames.extend(ready)
            self._ready.set()

    def _settle_holes(self, *, full: bool) -> None:
        """A hole waited on past the grace (or one holding the in-flight bound full): first a
        reset, which re-delivers in stream order from the ack floor; the same hole again: given
        up, and the core counts its seqs lost."""
        stuck = self.order.stalled(time.monotonic(), self.wc.jetstream_hole_grace_s)
        # Full mostly of frames waiting on holes, the holes cannot wait: what they wait for may be
        # behind the bound. Full of accepted frames (a slow database), commits make the room.
        if not stuck and full and self.order.held * 2 >= self.ledger.frames:
            oldest = self.order.oldest()
            stuck = [oldest] if oldest is not None else []
        for key, missing in stuck:
            if (key, missing) not in self._tried:
                if len(self._tried) > 100_000:  # bounded: each entry is one hole of one stream
                    self._tried.clear()
                self._tried.add((key, missing))
                self.reset("hole", publisher=key[0], epoch=key[1], kind=key[2], missing_from=missing)
                return
            frames = self.order.give_up(key)
            self.counts["js_holes_given_up"] += 1
            self.log.warning(
                "jetstream: a hole neither waiting nor a reset filled; going on past it",
                extra={
                    "ctx": {"publisher": key[0], "epoch": key[1], "kind": key[2], "missing_from": missing}
                },
            )
            self._frames.extend(frames)
            self._ready.set()

    def _error(self, op: str, exc: BaseException, **ctx: Any) -> None:
        NATS_ERRORS.labels(op).inc()
        self.counts["js_errors"] += 1
        self.burst.event(f"nats-{op}", "jetstream: NATS failed; retrying", op=op, error=str(exc)[:300], **ctx)

    async def aclose(self) -> None:
        nc, self.nc = self.nc, None
        if nc is None or nc.is_closed:
            return
        try:
            while self._acks:  # what committed is acked before the connection goes
                msg, term = self._acks.popleft()
                await (msg.term() if term else msg.ack())
            await nc.flush(timeout=2)
        except (NatsError, TimeoutError, OSError) as exc:  # not acked: delivered again, deduplicated
            self._error("ack", exc)
        finally:
            # Not drain(): it would wait out the pull subscriptions' open fetch requests.
            with contextlib.suppress(NatsError, TimeoutError, OSError):
                await nc.close()

    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected


async def _wait(event: asyncio.Event, timeout: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)


async def _quietly_unsubscribe(sub: JetStreamContext.PullSubscription) -> None:
    # The connection is going or gone: the subscription goes with it.
    with contextlib.suppress(NatsError, TimeoutError, OSError):
        await sub.unsubscribe()
