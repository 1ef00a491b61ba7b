"""The control socket protocol: one JSON request, one JSON reply, over ZeroMQ REQ/REP.

Request: ``{"cmd": "<name>", "args": {...}}``. Reply: ``{"ok": true, "result": ...}``
or ``{"ok": false, "error": "<message>"}``. Every worker answers ``ping``,
``stats`` and ``stop``; workers add their own commands. The server side is
:mod:`shared.control_server` (what it answers to malformed requests, and what it counts).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import msgspec
import zmq
import zmq.asyncio

#: Heartbeat counters that count a worker's messages, in order of preference: the first one a
#: worker reports is its MSG/S (connector: frames, simulator: frames_written, writer:
#: accepted, orderbook: deltas_applied; any worker may report plain ``messages``).
MESSAGE_COUNTERS = ("messages", "frames", "frames_written", "accepted", "deltas_applied")


class ControlRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    cmd: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    args: dict[str, Any] = {}


class ControlReply(msgspec.Struct, frozen=True, omit_defaults=True):
    ok: bool
    result: Any = None
    error: str = ""


class ControlError(Exception):
    """The worker answered with an error, or did not answer in time."""


REQUEST_DECODER = msgspec.json.Decoder(ControlRequest)
REPLY_DECODER = msgspec.json.Decoder(ControlReply)
ENCODER = msgspec.json.Encoder()


def _request_socket(ctx: zmq.Context[Any], endpoint: str, timeout_s: float) -> zmq.Socket[Any]:
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, int(timeout_s * 1000))
    sock.setsockopt(zmq.SNDTIMEO, int(timeout_s * 1000))
    sock.connect(endpoint)
    return sock


def _unwrap(raw: bytes, endpoint: str, cmd: str) -> Any:
    reply = REPLY_DECODER.decode(raw)
    if not reply.ok:
        raise ControlError(f"{endpoint} {cmd}: {reply.error}")
    return reply.result


def request(endpoint: str, cmd: str, args: dict[str, Any] | None = None, timeout_s: float = 3.0) -> Any:
    """Blocking request (for the CLI). Raises ControlError on error or timeout."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    sock = _request_socket(ctx, endpoint, timeout_s)
    try:
        sock.send(ENCODER.encode(ControlRequest(cmd, args or {})))
        raw = sock.recv()
    except zmq.Again:
        raise ControlError(
            f"no answer from {endpoint} to {cmd!r} within {timeout_s}s (is the worker running?)"
        ) from None
    finally:
        sock.close(0)
    return _unwrap(raw, endpoint, cmd)


async def arequest(
    endpoint: str, cmd: str, args: dict[str, Any] | None = None, timeout_s: float = 3.0
) -> Any:
    """Asyncio request (for workers and the supervisor)."""
    ctx: zmq.asyncio.Context = zmq.asyncio.Context.instance()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        await sock.send(ENCODER.encode(ControlRequest(cmd, args or {})))
        try:
            raw = await asyncio.wait_for(sock.recv(), timeout_s)
        except TimeoutError:
            raise ControlError(f"no answer from {endpoint} to {cmd!r} within {timeout_s}s") from None
    finally:
        sock.close(0)
    return _unwrap(raw, endpoint, cmd)
