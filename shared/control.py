"""The control socket protocol: one JSON request, one JSON reply, over ZeroMQ REQ/REP.

Request: ``{"cmd": "<name>", "args": {...}}``: ``cmd`` names a command class of
:mod:`shared.commands` (one module per command; its docstring is its documentation) and
``args`` are its fields. Reply: ``{"ok": true, "result": ...}`` or ``{"ok": false, "error":
"<message>", "field": "<argument>"}`` (``field`` when one argument was refused). Every worker
answers ``ping``, ``stats`` and ``stop``; workers add their own commands. The server side is
:mod:`shared.control_server` (what it answers to malformed requests, and what it counts).

Callers pass a command instance (``request(endpoint, Book(ticker=t))``), which is checked
before it is sent; a name and a dict (``request(endpoint, "book", {...})``) is the raw form
that tests use to send what a typed caller cannot.
"""

from __future__ import annotations

import asyncio
import os
from typing import Annotated, Any

import msgspec
import zmq
import zmq.asyncio

from shared.commands.base import BadArgument, Command, decode
from shared.config import ConfigError
from shared.curve import current, is_loopback

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
    #: What went wrong, for a person: no traceback, the command's name first.
    error: str = ""
    #: The argument that was refused, when one was (a missing, wrong-typed or out-of-range field).
    field: str = ""


class ControlError(Exception):
    """The worker answered with an error, or did not answer in time."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


def _envelope(cmd: str | Command, args: dict[str, Any] | None) -> tuple[str, ControlRequest]:
    """The request for ``cmd``. A command instance is checked first, as the worker will check it
    (a Struct's constructor does not check ranges): a refused one never leaves the caller."""
    if isinstance(cmd, Command):
        if args:
            raise TypeError("a command instance carries its own arguments")
        try:
            checked = decode(type(cmd), cmd.wire_args())
        except BadArgument as exc:
            raise ControlError(str(exc), exc.field) from None
        return checked.command_name(), ControlRequest(checked.command_name(), checked.wire_args())
    return cmd, ControlRequest(cmd, args or {})


REQUEST_DECODER = msgspec.json.Decoder(ControlRequest)
REPLY_DECODER = msgspec.json.Decoder(ControlReply)
ENCODER = msgspec.json.Encoder()


def request_socket(ctx: zmq.Context[Any], endpoint: str, timeout_s: float) -> zmq.Socket[Any]:
    """A REQ socket to ``endpoint`` whose sends and receives give up after ``timeout_s``."""
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, int(timeout_s * 1000))
    sock.setsockopt(zmq.SNDTIMEO, int(timeout_s * 1000))
    _dial(sock, endpoint)
    sock.connect(endpoint)
    return sock


def _dial(sock: zmq.Socket[Any], endpoint: str) -> None:
    """CURVE client options for an endpoint beyond loopback (:mod:`shared.curve`): a missing key
    is the caller's ControlError, and the socket is closed."""
    try:
        current().dial(sock, endpoint)
    except ConfigError as exc:
        sock.close(0)
        raise ControlError(str(exc)) from None


def _unwrap(raw: bytes, endpoint: str, cmd: str) -> Any:
    reply = REPLY_DECODER.decode(raw)
    if not reply.ok:
        raise ControlError(f"{endpoint} {cmd}: {reply.error}", reply.field)
    return reply.result


def request(
    endpoint: str, cmd: str | Command, args: dict[str, Any] | None = None, timeout_s: float = 3.0
) -> Any:
    """Blocking request (for the CLI). Raises ControlError on error or timeout."""
    cmd, req = _envelope(cmd, args)
    if endpoint.startswith("ipc://") and not os.path.exists(endpoint[len("ipc://") :]):
        # Nothing was ever bound there: say so at once instead of waiting out the timeout.
        raise ControlError(f"nothing listens on {endpoint} (no such socket; is it running?)")
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    sock = request_socket(ctx, endpoint, timeout_s)
    try:
        sock.send(ENCODER.encode(req))
        raw = sock.recv()
    except zmq.Again:
        # Beyond loopback the silence may also be a CURVE server refusing this client's key.
        why = (
            "is the worker running?" if is_loopback(endpoint) else "is it running, and does it admit our key?"
        )
        raise ControlError(f"no answer from {endpoint} to {cmd!r} within {timeout_s}s ({why})") from None
    finally:
        sock.close(0)
    return _unwrap(raw, endpoint, cmd)


def _typed(cmd: Command, result: Any, endpoint: str) -> Any:
    try:
        return msgspec.convert(result, type(cmd).reply)
    except msgspec.ValidationError as exc:
        raise ControlError(f"{endpoint} {cmd.command_name()}: unexpected answer: {exc}") from None


def call(endpoint: str, cmd: Command, timeout_s: float = 3.0) -> Any:
    """:func:`request`, with the result converted to the command's ``reply`` type (a Struct
    where the answer has a fixed shape); an answer of another shape is a ControlError."""
    return _typed(cmd, request(endpoint, cmd, timeout_s=timeout_s), endpoint)


async def acall(endpoint: str, cmd: Command, timeout_s: float = 3.0) -> Any:
    """:func:`arequest`, with the result converted to the command's ``reply`` type."""
    return _typed(cmd, await arequest(endpoint, cmd, timeout_s=timeout_s), endpoint)


async def arequest(
    endpoint: str, cmd: str | Command, args: dict[str, Any] | None = None, timeout_s: float = 3.0
) -> Any:
    """Asyncio request (for workers and the supervisor)."""
    cmd, req = _envelope(cmd, args)
    ctx: zmq.asyncio.Context = zmq.asyncio.Context.instance()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    _dial(sock, endpoint)
    sock.connect(endpoint)
    try:
        await sock.send(ENCODER.encode(req))
        try:
            raw = await asyncio.wait_for(sock.recv(), timeout_s)
        except TimeoutError:
            raise ControlError(f"no answer from {endpoint} to {cmd!r} within {timeout_s}s") from None
    finally:
        sock.close(0)
    return _unwrap(raw, endpoint, cmd)
