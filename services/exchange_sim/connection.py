"""One client connection's outbound side: queue, writer, server pings, per-connection faults.

Frames are queued as JSON payloads and written in batches straight to the
transport as RFC 6455 text frames (server frames are unmasked), one
``transport.write`` per batch: that, not per-frame coroutines, is what lets
blast mode run at socket speed. Pings and pongs are written the same way so
they interleave with data exactly as on the wire.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from services.exchange_sim import metrics
from services.exchange_sim.session import SimSession
from services.exchange_sim.truth import Truth
from shared.config import SimConfig
from shared.tasks import Supervised

_HIGH_WATER = 1 << 20  # bytes in the transport buffer before the writer waits for the socket


def ws_frame_header(opcode: int, n: int) -> bytes:
    b0 = 0x80 | opcode
    if n < 126:
        return bytes((b0, n))
    if n < 65_536:
        return bytes((b0, 126)) + n.to_bytes(2, "big")
    return bytes((b0, 127)) + n.to_bytes(8, "big")


# Text-frame headers for the common payload sizes, built once (a lookup beats building 4 bytes).
_TEXT_HEADERS = [ws_frame_header(0x1, n) for n in range(8_192)]


def encode_text_frames(batch: list[bytes]) -> bytes:
    parts: list[bytes] = []
    append = parts.append
    headers = _TEXT_HEADERS
    for p in batch:
        n = len(p)
        append(headers[n] if n < 8_192 else ws_frame_header(0x1, n))
        append(p)
    return b"".join(parts)


class Conn:
    """Given its collaborators by the :class:`~services.exchange_sim.hub.Hub` (no back
    reference to it): the simulator's config, the ground truth it records sent frames in,
    ``room`` (set when queues drain, for blast mode), the log, and ``disconnect``."""

    def __init__(
        self,
        conn_id: int,
        transport: Any,
        protocol: Any,
        peer: str,
        session: SimSession,
        *,
        cfg: SimConfig,
        truth: Truth,
        room: asyncio.Event,
        log: logging.Logger,
        disconnect: Callable[[Conn, str], None],
    ) -> None:
        self.id = conn_id
        self.cfg = cfg
        self.truth = truth
        self.room = room
        self.log = log
        self._disconnect = disconnect
        self.transport = transport
        self.protocol = protocol
        self.peer = peer
        self.session = session
        self.out: list[bytes] = []
        self.wake = asyncio.Event()
        self.closed = False
        self.stall_until = 0.0
        self.no_ping_until = 0.0
        self.unanswered = 0
        # Per-sid pending faults; ``armed`` sends this connection's frames down the slow path.
        self.gaps: dict[int, int] = {}
        self.dups: dict[int, int] = {}
        self.armed = False
        self.frames_written = 0
        self.tasks = Supervised(f"sim-conn-{conn_id}", self._crashed)

    def start(self) -> None:
        self.tasks.spawn(self._writer(), name="writer")
        self.tasks.spawn(self._pinger(), name="pinger")

    def _crashed(self, what: str, exc: BaseException) -> None:
        # A bug in one connection's loop ends that connection (the client reconnects), loudly.
        self.log.error(
            "connection task crashed", exc_info=exc, extra={"ctx": {"conn": self.id, "task": what}}
        )
        self.close(1011, b"simulator error", reason="crashed")

    # ---- outbound ---------------------------------------------------------------------------
    def push(self, frames: list[bytes]) -> None:
        if frames and not self.closed:
            self.out.extend(frames)
            self.wake.set()

    def stalled(self, now: float | None = None) -> bool:
        return self.stall_until > (time.monotonic() if now is None else now)

    async def _writer(self) -> None:
        transport = self.transport
        try:
            while not self.closed:
                if not self.out:
                    self.wake.clear()
                    await self.wake.wait()
                    continue
                wait = self.stall_until - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                    continue
                if transport.is_closing():
                    break
                batch, self.out = self.out, []
                transport.write(encode_text_frames(batch))
                self.frames_written += len(batch)
                metrics.FRAMES_SENT.inc(len(batch))
                self.truth.sent_frames(self.id, batch, time.time_ns())
                self.room.set()
                if transport.get_write_buffer_size() > _HIGH_WATER:
                    await self.protocol._drain_helper()  # aiohttp's flow control: waits while paused
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            self.room.set()
            if not self.closed:
                self._disconnect(self, "write_failed")

    def write_control(self, opcode: int, payload: bytes) -> None:
        if not self.closed and not self.transport.is_closing():
            self.transport.write(ws_frame_header(opcode, len(payload)) + payload)

    # ---- keep-alive -------------------------------------------------------------------------
    async def _pinger(self) -> None:
        interval = self.cfg.ping_interval_s
        missed = self.cfg.missed_pongs
        while not self.closed:
            await asyncio.sleep(interval)
            now = time.monotonic()
            if self.stalled(now) or self.no_ping_until > now:
                continue
            if self.unanswered >= missed:
                self.log.info(
                    "disconnecting client that missed pongs",
                    extra={"ctx": {"conn": self.id, "missed": missed}},
                )
                self.close(1008, b"missed pongs", reason="missed_pongs")
                return
            self.unanswered += 1
            self.write_control(0x9, b"heartbeat")

    def on_ping(self, payload: bytes) -> None:
        # Kalshi documents an empty pong to the (empty) client ping; RFC 6455 says echo the
        # payload, which is the same thing for an empty ping and keeps other clients working.
        if not (self.stalled() or self.no_ping_until > time.monotonic()):
            self.write_control(0xA, payload)

    def on_pong(self) -> None:
        self.unanswered = 0

    # ---- closing ----------------------------------------------------------------------------
    def close(self, code: int | None = None, message: bytes = b"", *, reason: str = "closed") -> None:
        """End the connection: with a close frame when ``code`` is given, else a bare TCP drop."""
        if self.closed:
            return
        if code is not None:
            self.write_control(0x8, code.to_bytes(2, "big") + message)
            self.transport.close()
        else:
            self.transport.abort()
        self._disconnect(self, reason)

    def cancel_tasks(self) -> None:
        self.tasks.cancel()

    async def wait_tasks(self) -> None:
        await self.tasks.close()
