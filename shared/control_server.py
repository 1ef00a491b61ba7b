"""Serving a control socket: any input gets an answer or a counted drop, never a dead socket.

One implementation for every control socket (every worker's and the supervisor's, through
:class:`~shared.actor.Actor`). Two parts:

- :class:`Dispatcher` turns one request body into one reply body; its handler is a worker's
  :class:`~shared.commands.table.CommandTable` (one Struct per command). It is total: bytes that are
  not a control request, an unknown command, a missing or wrong-typed argument and a command
  that fails are all answered with ``{"ok": false, "error": ...}``, counted in
  ``kxfeed_control_rejected_total{reason}`` and logged once per burst. Only a command that
  fails for a reason of its own (not the caller's) is logged as a worker failure, with its
  traceback.
- :class:`ControlServer` owns the socket. It is a ROUTER, not a REP: a REP socket silently
  throws away messages without a REQ envelope after waking its reader, which is how one TCP
  connection writing random bytes once ended the control task with ``zmq.Again``. A ROUTER
  hands every message over, so the server sees, counts and drops what is not a REQ request.
  ``ZMQ_MAXMSGSIZE`` bounds what a peer can make it allocate; what zmq refuses on its own
  (handshake failures, oversized messages) is counted by a socket monitor
  (:mod:`shared.zmq_watch`). Bound beyond loopback it is a CURVE server admitting only
  ``[curve] allowed_clients`` (:mod:`shared.curve`); a refused handshake never reaches it.

Reasons (a closed set, so the label cannot grow with hostile input): ``envelope`` (not a REQ
message: dropped, no one to answer), ``multipart`` (more than one body frame), ``decode`` (not a
JSON control request), ``unknown_command``, ``bad_args``, ``failed`` (the command raised),
``reply_encode`` (the result is not JSON-encodable), ``unroutable`` (the reply could not be
delivered: the peer left or does not read).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import zmq
import zmq.asyncio
from prometheus_client import Counter

from shared.commands.base import BadArgument
from shared.control import ENCODER, REQUEST_DECODER, ControlReply
from shared.curve import Curve, current
from shared.log import BurstLog
from shared.zmq_watch import PeerWatch

REJECTED = Counter(
    "kxfeed_control_rejected_total",
    "Control messages refused (answered with an error, or dropped when there is no one to answer)",
    ["reason"],
)
REASONS = (
    "envelope",
    "multipart",
    "decode",
    "unknown_command",
    "bad_args",
    "failed",
    "reply_encode",
    "unroutable",
)
#: Default ``ZMQ_MAXMSGSIZE`` of a control socket: requests are a command and a few arguments.
DEFAULT_MAX_MSG_BYTES = 1024 * 1024
#: Bytes of a rejected message shown in the log (hex), enough to recognise what sent it.
_HEAD = 32
#: Messages read per wake-up before the monitor gets its turn (a flood cannot starve it).
_BATCH = 256


class UnknownCommand(Exception):
    """Raised by a command handler for a command it does not know."""


class MissingArgument(KeyError):
    """A required argument is not in the request (raised by :class:`Args` lookups)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"missing argument {self.name!r}"


class Args(dict[str, Any]):
    """A request's arguments: ``args["x"]`` on a missing key says which argument is missing."""

    def __missing__(self, key: str) -> Any:
        raise MissingArgument(key)


Handler = Callable[[str, Args], Awaitable[Any]]


def _caller_error(cmd: str, exc: Exception) -> str:
    """The error a caller reads for its own mistake (no traceback, no type names for values)."""
    if isinstance(exc, MissingArgument):
        return f"{cmd}: {exc}"
    if isinstance(exc, KeyError):
        # KeyError's str() is the repr of its argument; a handler's message reads better bare.
        detail = exc.args[0] if exc.args else ""
        return f"{cmd}: {detail if isinstance(detail, str) else repr(detail)}"
    if isinstance(exc, TypeError):
        return f"{cmd}: wrong argument type: {exc}"
    return str(exc)


class Dispatcher:
    """One request body in, one reply body out (see the module docstring for what is counted)."""

    def __init__(self, owner: str, handler: Handler, log: logging.Logger) -> None:
        self.owner = owner
        self.handler = handler
        self.log = log
        self.rejected: dict[str, int] = {}
        self._hostile = BurstLog(log)
        self._mistakes = BurstLog(log, level=logging.INFO)

    def count(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        REJECTED.labels(reason).inc()

    def refuse(self, reason: str, data: bytes, peer: str, **ctx: Any) -> None:
        """Count and log (once per burst) input that is not a request at all."""
        self.count(reason)
        self._hostile.event(
            f"control/{reason}",
            "control message rejected",
            reason=reason,
            owner=self.owner,
            peer=peer,
            size=len(data),
            head=data[:_HEAD].hex(),
            **ctx,
        )

    async def dispatch(self, body: bytes, peer: str = "") -> tuple[bytes, str | None]:
        """The reply body and the reject reason (None when the request was answered ok)."""
        try:
            req = REQUEST_DECODER.decode(body)
        except Exception as exc:  # DecodeError, ValidationError, RecursionError: all the caller's
            self.refuse("decode", body, peer, error=str(exc)[:200])
            return self._encode(ControlReply(ok=False, error=f"bad request: {exc}")), "decode"
        cmd = req.cmd
        try:
            result = await self.handler(cmd, Args(req.args))
        except UnknownCommand:
            return self._mistake("unknown_command", cmd, f"unknown command {cmd!r} for {self.owner}", peer)
        except BadArgument as exc:  # the request does not decode into its command's class
            return self._mistake("bad_args", cmd, str(exc), peer, exc.field)
        except (ValueError, KeyError, TypeError) as exc:  # the caller's mistake, not ours
            return self._mistake("bad_args", cmd, _caller_error(cmd, exc), peer)
        except Exception as exc:  # a failing command must not take the socket or the worker down
            return self._failure("failed", "control command failed", cmd, exc, f"{type(exc).__name__}: {exc}")
        try:
            return ENCODER.encode(ControlReply(ok=True, result=result)), None
        except Exception as exc:  # our bug: a handler returned something JSON cannot carry
            error = f"{cmd}: result not encodable: {type(exc).__name__}"
            return self._failure("reply_encode", "control reply not encodable", cmd, exc, error)

    def _failure(self, reason: str, message: str, cmd: str, exc: Exception, error: str) -> tuple[bytes, str]:
        # Our side failed, not the caller: logged every time with its traceback, not per burst.
        self.count(reason)
        self.log.error(
            message, exc_info=exc, extra={"ctx": {"cmd": cmd, "owner": self.owner, "error": repr(exc)}}
        )
        return self._encode(ControlReply(ok=False, error=error)), reason

    def _mistake(self, reason: str, cmd: str, error: str, peer: str, field: str = "") -> tuple[bytes, str]:
        self.count(reason)
        self._mistakes.event(
            f"control/{reason}/{cmd[:64]}",
            "control request refused",
            reason=reason,
            owner=self.owner,
            cmd=cmd[:64],
            error=error[:200],
            peer=peer,
        )
        return self._encode(ControlReply(ok=False, error=error, field=field)), reason

    @staticmethod
    def _encode(reply: ControlReply) -> bytes:
        return ENCODER.encode(reply)

    def flush(self) -> None:
        self._hostile.flush()
        self._mistakes.flush()


def _peer(frame: zmq.Frame) -> str:
    try:
        return str(frame.get("Peer-Address"))
    except (zmq.ZMQError, UnicodeDecodeError):  # ipc/inproc peers have no address
        return ""


class ControlServer:
    """Binds ``endpoint`` (ROUTER) and answers requests one at a time until cancelled.

    ``endpoint`` may name port ``*`` (``tcp://127.0.0.1:*``): :attr:`bound` is set to the
    endpoint actually bound once it is, so a caller never picks a port for someone else to bind.
    """

    def __init__(
        self,
        endpoint: str,
        dispatcher: Dispatcher,
        *,
        max_msg_bytes: int = DEFAULT_MAX_MSG_BYTES,
        ctx: zmq.asyncio.Context | None = None,
        curve: Curve | None = None,
        on_bound: Callable[[str], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.curve = curve
        self.on_bound = on_bound
        self.dispatcher = dispatcher
        self.max_msg_bytes = max_msg_bytes
        self._ctx = ctx or zmq.asyncio.Context.instance()
        self.bound = ""
        self.listening = asyncio.Event()

    async def run(self) -> None:
        sock = self._ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, self.max_msg_bytes)
        # A reply to a peer that left (or stopped reading) raises instead of vanishing: counted.
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        watch = PeerWatch(sock, "control")
        try:
            (self.curve or current()).serve(sock, self.endpoint, "control")
            sock.bind(self.endpoint)
            self.bound = str(sock.getsockopt_string(zmq.LAST_ENDPOINT))
            self.listening.set()
            if self.on_bound is not None:
                self.on_bound(self.bound)
            poller = zmq.asyncio.Poller()
            poller.register(sock, zmq.POLLIN)
            poller.register(watch.monitor, zmq.POLLIN)
            more = False
            while True:
                if more:
                    await asyncio.sleep(0)  # a flood: let the worker's other tasks run between batches
                else:
                    await poller.poll()
                more = await self._serve_ready(sock)
                watch.poll()
        finally:
            self.dispatcher.flush()
            watch.close()
            sock.close(0)

    async def _serve_ready(self, sock: zmq.asyncio.Socket) -> bool:
        """Handle what is ready, up to a batch; True when the batch ran out first."""
        for _ in range(_BATCH):
            try:
                frames: list[zmq.Frame] = await sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:  # nothing (more) ready: also what a spurious wake-up looks like
                return False
            await self._handle(sock, frames)
        return True

    async def _handle(self, sock: zmq.asyncio.Socket, frames: list[zmq.Frame]) -> None:
        d = self.dispatcher
        peer = _peer(frames[-1])
        # ROUTER prepends the peer's routing id; a REQ peer then sends an empty delimiter.
        if len(frames) < 3 or frames[1].bytes != b"":
            first = frames[1].bytes if len(frames) > 1 else b""
            d.refuse("envelope", first, peer, frames=len(frames) - 1)
            return
        route = frames[0].bytes
        if len(frames) > 3:
            d.refuse("multipart", frames[2].bytes, peer, frames=len(frames) - 2)
            error = f"one frame per request, got {len(frames) - 2}"
            reply = ENCODER.encode(ControlReply(ok=False, error=error))
        else:
            reply, _ = await d.dispatch(frames[2].bytes, peer)
        try:
            await sock.send_multipart([route, b"", reply], zmq.NOBLOCK)
        except zmq.ZMQError as exc:  # EHOSTUNREACH: the peer left; EAGAIN: it does not read
            d.refuse("unroutable", reply, peer, error=exc.strerror)


async def serve_control(
    endpoint: str,
    owner: str,
    handler: Handler,
    log: logging.Logger,
    *,
    max_msg_bytes: int = DEFAULT_MAX_MSG_BYTES,
    curve: Curve | None = None,
    on_bound: Callable[[str], None] | None = None,
) -> None:
    """Serve ``endpoint`` with ``handler`` until cancelled (what an actor's control task runs);
    ``on_bound`` gets the endpoint actually bound (a port ``*`` or 0 made concrete)."""
    dispatcher = Dispatcher(owner, handler, log)
    server = ControlServer(endpoint, dispatcher, max_msg_bytes=max_msg_bytes, curve=curve, on_bound=on_bound)
    await server.run()


__all__ = [
    "DEFAULT_MAX_MSG_BYTES",
    "REASONS",
    "REJECTED",
    "Args",
    "ControlServer",
    "Dispatcher",
    "Handler",
    "MissingArgument",
    "UnknownCommand",
    "serve_control",
]
