"""The live stream's shell: the aiohttp WebSocket handler at ``/api/v1/stream``, the periodic
work (heartbeats, coalescing hand-overs) and the stream's Prometheus metrics.

The worker owns one :class:`StreamHub`: it feeds every bus message to :meth:`StreamHub.feed`
(subscribing the bus to :meth:`StreamHub.topics`), mounts :meth:`StreamHub.handler`, runs
:meth:`StreamHub.run` as a supervised task and awaits :meth:`StreamHub.close` at stop. The
REST routes read :attr:`StreamHub.live`.

Per client, a reader (requests in, answered by the core; anything hostile is answered with an
``error`` and counted) and a sender (frames out of the client's bounded queue). After each
slice of the fan-out the hub writes at once to every client whose transport is not backed up
(no task switch per client per batch); a client that does not read is left to its own
sender, which waits for its transport to drain: its queue then fills and the slow-consumer
policy applies.

``?format=ndjson`` on the URL: each text frame holds one or more messages, one JSON document
per line (``\n``-separated; JSON never holds a raw newline). The default, ``format=json``, is
one message per frame. One closed for it is
closed with 1008; a client over ``stream_max_clients`` with 1013; all at stop with 1001.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import cast

from aiohttp import WSCloseCode, WSMsgType, web
from prometheus_client import CollectorRegistry

from services.gateway.app import json_response
from services.gateway.auth import PROTOCOL
from services.gateway.errors import bad_param
from services.gateway.live import LiveState
from services.gateway.stream import STREAM_KINDS, Client, Prepared, StreamCore
from services.gateway.stream_metrics import HUBS, StreamCollector
from services.gateway.stream_queue import Limits
from shared.config import GatewayConfig
from shared.log import BurstLog, get_logger
from shared.messages import Message

__all__ = ["STREAM_PATH", "StreamHub"]

STREAM_PATH = "/api/v1/stream"
#: Frames taken from a queue per send round (then the loop yields to the others), and the
#: bytes an ndjson frame gathers at most (a batch bigger than that is still one frame).
SEND_BATCH = 256
NDJSON_FRAME_BYTES = 256 * 1024
#: The stream's frame formats (``?format=``).
FORMATS = ("json", "ndjson")
#: Bus messages fanned out per slice (then the loop runs everything else once).
FANOUT_SLICE = 500
#: Converted messages waiting for their fan-out at most; past it the oldest are dropped and
#: every client taking their kind gets a ``lost`` notice (the hub is behind the bus).
BACKLOG_MAX = 50_000
#: Bytes a client's transport may hold unsent before its sender waits (its queue takes the rest).
WRITE_HIGH = 256 * 1024
DRAIN_POLL_S = 0.005
#: A close handshake that does not finish in this long (a client that does not read) is cut.
CLOSE_TIMEOUT_S = 2.0
#: A client message up to this many times ``stream_max_frame_bytes`` is read and answered
#: ``too_large``; a bigger one makes aiohttp close the connection (1009) without reading it.
HARD_FRAME_FACTOR = 8
#: The bus prefixes the hub takes: its stream kinds, and market metadata for the live state.
EXTRA_TOPICS = ("meta.",)


class _Conn:
    __slots__ = ("client", "closed_by_us", "sender", "transport", "wake", "ws")

    def flush(self) -> bool:
        """Write what the client's queue holds, at most one round (no await); False when the
        transport is backed up (the sender must wait for it to drain) or gone."""
        client, transport = self.client, self.transport
        # Nothing after a close frame: one the hub sent (closed_by_us) or is about to send.
        if transport is None or client.closing or self.closed_by_us or self.ws.closed:
            return False
        if transport.is_closing():
            return False
        if transport.get_write_buffer_size() > WRITE_HIGH:
            return False
        outbox = client.outbox
        if client.batch:
            payloads = outbox.take(SEND_BATCH, NDJSON_FRAME_BYTES)
            if payloads:
                transport.write(text_frames([b"\n".join(payloads)]))
        else:
            payloads = outbox.take(SEND_BATCH)
            if payloads:
                # One write for the batch: aiohttp's send_frame costs a coroutine and a write per
                # frame, which at 100 clients x thousands of frames/s is the gateway's whole core.
                transport.write(text_frames(payloads))
        return True

    def __init__(
        self, client: Client, ws: web.WebSocketResponse, transport: asyncio.BaseTransport | None
    ) -> None:
        self.client = client
        self.ws = ws
        # Not an isinstance check: uvloop's transports (the workers' loop) are not asyncio's classes.
        self.transport = cast(asyncio.Transport | None, transport)
        self.wake = asyncio.Event()
        self.sender: asyncio.Task[None] | None = None
        #: Why the hub closed it ("" = the client went, or is going, by itself).
        self.closed_by_us = ""


class StreamHub:
    def __init__(
        self,
        cfg: GatewayConfig,
        metrics: CollectorRegistry | None = None,
        *,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        """``metrics``: the registry the stream's metrics are exported on (None: the process's)."""
        self.cfg = cfg
        self.limits = Limits.of(cfg)
        self.live = LiveState(cfg.live_max_markets)
        self.core = StreamCore(self.limits, self.live)
        self._clock = clock_ns
        self._conns: dict[int, _Conn] = {}
        self._changed = asyncio.Event()
        #: Bus messages converted but not yet fanned out, and those dropped from it, by kind.
        self._backlog: deque[Prepared] = deque()
        self._backlog_lost: dict[str, int] = {}
        self._fan = asyncio.Event()
        #: The last ndjson payload framed, and its frame (every group member gets the same bytes).
        self._framed: tuple[bytes, bytes] = (b"", b"")
        self._closing = False
        self.log = get_logger("gateway.stream")
        self.burst = BurstLog(self.log)
        self._dropped_seen = 0
        self._registry = metrics
        self._collector: StreamCollector | None = None
        if metrics is None:
            HUBS.add(self)
        else:
            self._collector = StreamCollector(lambda: [self])
            metrics.register(self._collector)

    # ---- the worker's side -------------------------------------------------------------------
    def topics(self) -> list[str]:
        """The bus prefixes to subscribe to for this hub."""
        return [f"{k}." for k in STREAM_KINDS] + list(EXTRA_TOPICS)

    def feed(self, msg: Message) -> None:
        """One bus message (kept as live state at once, queued to the clients that want it)."""
        self.feed_many((msg,))

    def feed_many(self, msgs: Iterable[Message]) -> None:
        """A batch of bus messages: live state, and the first slice of the fan-out, now (no
        task switch between the bus and the clients' sockets); the rest in :meth:`run`, a
        slice at a time, so a burst never holds the loop (heartbeats, client requests) long."""
        now = self._clock()
        ingest, backlog = self.core.ingest, self._backlog
        for msg in msgs:
            prepared = ingest(msg, now)
            if prepared is None:
                continue
            if len(backlog) >= BACKLOG_MAX:  # the hub is behind the bus: oldest first, told to clients
                old = backlog.popleft()
                self._backlog_lost[old.kind] = self._backlog_lost.get(old.kind, 0) + 1
            backlog.append(prepared)
        if backlog or self._backlog_lost:
            self._fan_slice()
            if backlog:
                self._fan.set()

    def _fan_slice(self) -> None:
        """Fan out the oldest :data:`FANOUT_SLICE` waiting messages and write them."""
        backlog, fanout = self._backlog, self.core.fanout
        now = self._clock()
        if self._backlog_lost:
            lost, self._backlog_lost = self._backlog_lost, {}
            self.core.lost_before_fanout(lost, now)
        for _ in range(min(FANOUT_SLICE, len(backlog))):
            fanout(backlog.popleft(), now)
        self.core.seal(now, self._send_now)
        self._wake()

    async def _fanout(self) -> None:
        backlog = self._backlog
        while True:
            await self._fan.wait()
            self._fan.clear()
            while backlog or self._backlog_lost:
                self._fan_slice()
                await asyncio.sleep(0)

    def _send_now(self, client: Client, payload: bytes) -> bool:
        """Write one ndjson payload to ``client`` now if its transport takes it (see
        :meth:`StreamCore.seal`); the frame is built once for every member it goes to."""
        conn = self._conns.get(client.id)
        if conn is None:
            return False
        transport = conn.transport
        if transport is None or conn.closed_by_us or conn.ws.closed or transport.is_closing():
            return False
        if transport.get_write_buffer_size() > WRITE_HIGH:
            return False
        if payload is not self._framed[0]:
            self._framed = (payload, text_frames([payload]))
        transport.write(self._framed[1])
        return True

    def stats(self) -> dict[str, int]:
        frames, size = self.core.queued()
        return {
            "stream_backlog": len(self._backlog),
            "stream_clients": len(self.core.clients),
            "stream_queued_frames": frames,
            "stream_queued_bytes": size,
            "stream_dropped": self.core.counts.total("dropped"),
            "live_markets": len(self.live),
        }

    def _wake(self) -> None:
        for client in self.core.take_woken():
            conn = self._conns.get(client.id)
            if conn is None:
                continue
            if client.closing and not conn.closed_by_us:
                self._close_later(conn, WSCloseCode.POLICY_VIOLATION, client.closing)
            elif conn.flush() and not len(client.outbox):
                continue  # all written now: its sender need not run
            else:
                conn.wake.set()

    # ---- one client ----------------------------------------------------------------------------
    async def handler(self, request: web.Request) -> web.StreamResponse:
        # Answered here, not raised: the handler is mounted with and without the API's middleware.
        for name in request.query:
            if name != "format":
                err = bad_param(name, "unknown parameter (the stream takes format=json|ndjson)")
                return json_response(err.body(), err.status)
        fmt = request.query.getall("format", ["json"])
        if len(fmt) != 1 or fmt[0] not in FORMATS:
            err = bad_param("format", "one of json, ndjson")
            return json_response(err.body(), err.status)
        ws = web.WebSocketResponse(
            heartbeat=self.cfg.stream_heartbeat_s,
            max_msg_size=self.limits.max_frame_bytes * HARD_FRAME_FACTOR,
            compress=False,
            # Answered when offered: a browser that offers subprotocols (the page carries its
            # token in one, see auth.py) fails a handshake that picks none.
            protocols=(PROTOCOL,),
        )
        await ws.prepare(request)
        peer = request.remote or ""
        if self._closing:
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server stopping")
            return ws
        client = self.core.connect(peer, self._clock(), batch=fmt[0] == "ndjson")
        if client is None:
            self.burst.event("refused", "stream client refused", peer=peer, clients=len(self.core.clients))
            await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"too many stream clients")
            return ws
        conn = _Conn(client, ws, request.transport)
        self._conns[client.id] = conn
        conn.sender = asyncio.create_task(self._send(conn), name=f"stream-send-{client.id}")
        reason = "client_closed"
        try:
            async for msg in ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    self.core.handle(client, msg.data, self._clock())
                    self._changed.set()
                    self._wake()
                elif msg.type == WSMsgType.ERROR:
                    reason = _error_reason(ws.exception())
                    break
        except (ConnectionError, asyncio.CancelledError) as exc:
            reason = "connection_lost" if isinstance(exc, ConnectionError) else "stopped"
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            if conn.closed_by_us:
                reason = conn.closed_by_us
            elif reason == "client_closed" and isinstance(ws.exception(), asyncio.TimeoutError):
                reason = "heartbeat"  # aiohttp's ping went unanswered
            self.core.disconnect(client, reason)
            self._conns.pop(client.id, None)
            if conn.sender is not None:
                conn.sender.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                    await conn.sender
            if reason not in ("client_closed", "stopped"):
                self.burst.event(
                    f"disconnect-{reason}", "stream client disconnected", peer=peer, reason=reason
                )
        return ws

    async def _send(self, conn: _Conn) -> None:
        client, ws, outbox, transport = conn.client, conn.ws, conn.client.outbox, conn.transport
        if transport is None:
            return
        while True:
            await conn.wake.wait()
            conn.wake.clear()
            while not client.closing and not ws.closed and not transport.is_closing():
                # A client that does not read: wait here (its queue meanwhile fills, and the
                # policy applies) until the transport has sent most of what it holds.
                while transport.get_write_buffer_size() > WRITE_HIGH and not transport.is_closing():
                    await asyncio.sleep(DRAIN_POLL_S)
                if not len(outbox) and not outbox.lost:
                    break
                conn.flush()
                await asyncio.sleep(0)  # fairness: a client with a deep queue does not starve the rest

    def _close_later(self, conn: _Conn, code: int, reason: str) -> None:
        conn.closed_by_us = reason
        asyncio.get_running_loop().create_task(self._close(conn, code, reason))

    async def _close(self, conn: _Conn, code: int, reason: str) -> None:
        if conn.sender is not None:
            conn.sender.cancel()  # it may be stuck in a drain of a client that does not read
        try:
            await asyncio.wait_for(conn.ws.close(code=code, message=reason.encode()[:120]), CLOSE_TIMEOUT_S)
        except (TimeoutError, ConnectionError):
            pass
        finally:
            # A client that does not read never answers the close: cut it.
            transport = conn.transport
            if transport is not None and not transport.is_closing():
                transport.abort()

    # ---- periodic work -----------------------------------------------------------------------
    async def run(self) -> None:
        """The fan-out, heartbeats and coalescing hand-overs, for ever (the worker's supervised task)."""
        await asyncio.gather(self._fanout(), self._periodic())

    async def _periodic(self) -> None:
        heartbeat_ns = int(self.cfg.stream_heartbeat_s * 1e9)
        next_heartbeat = self._clock() + heartbeat_ns
        while True:
            now = self._clock()
            self.core.flush(now)
            if now >= next_heartbeat or next_heartbeat - now > heartbeat_ns:  # due, or the clock went back
                self.core.heartbeat(now)
                next_heartbeat = now + heartbeat_ns
            self._wake()
            self._log_drops()
            due = self.core.next_due_ns()
            wake_at = next_heartbeat if due is None else min(due, next_heartbeat)
            delay = min(1.0, max(0.0, (wake_at - self._clock()) / 1e9))
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), delay)

    def _log_drops(self) -> None:
        dropped = self.core.counts.total("dropped")
        if dropped > self._dropped_seen:
            lagging = [c.peer for c in self.core.clients.values() if c.outbox.lost]
            self.burst.event(
                "dropped",
                "stream frames dropped for clients that do not keep up",
                amount=dropped - self._dropped_seen,
                policy=self.limits.policy,
                clients=lagging[:10],
            )
            self._dropped_seen = dropped

    async def close(self) -> None:
        """Close every client (1001) and stop exporting metrics."""
        self._closing = True
        conns = list(self._conns.values())
        for conn in conns:
            conn.closed_by_us = "stopped"
        await asyncio.gather(
            *(self._close(c, WSCloseCode.GOING_AWAY, "server stopping") for c in conns),
            return_exceptions=True,
        )
        self.burst.flush()
        if self._collector is not None and self._registry is not None:
            with contextlib.suppress(KeyError):
                self._registry.unregister(self._collector)
            self._collector = None
        HUBS.discard(self)


def text_frames(payloads: list[bytes]) -> bytes:
    """``payloads`` as consecutive unmasked, unfragmented WebSocket text frames (RFC 6455 5.2;
    a server never masks, and compression is off on the stream)."""
    parts: list[bytes] = []
    for p in payloads:
        n = len(p)
        if n < 126:
            parts.append(bytes((0x81, n)))
        elif n < 65_536:
            parts.append(struct.pack("!BBH", 0x81, 126, n))
        else:
            parts.append(struct.pack("!BBQ", 0x81, 127, n))
        parts.append(p)
    return b"".join(parts)


def _error_reason(exc: BaseException | None) -> str:
    code = getattr(exc, "code", None)
    if code == WSCloseCode.MESSAGE_TOO_BIG:
        return "too_large"
    return "protocol_error"
