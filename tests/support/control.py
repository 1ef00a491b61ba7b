"""A control server on its own event loop in a thread, for tests that talk to it over a real socket."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import typing
from typing import Any

import msgspec
import zmq
import zmq.asyncio

from shared.commands.base import Command
from shared.control import ControlError, request
from shared.control_server import DEFAULT_MAX_MSG_BYTES, ControlServer, Dispatcher, Handler
from shared.log import get_logger
from tests.support.procs import wait_until


def stats(endpoint: str, timeout_s: float = 0.5) -> dict[str, Any]:
    """A worker's ``stats`` reply, or ``{}`` while it is not answering yet (for ``wait_until``)."""
    try:
        out: dict[str, Any] = request(endpoint, "stats", timeout_s=timeout_s)
        return out
    except ControlError:
        return {}


class Served:
    """A ControlServer on its own event loop in a thread, bound to a port the kernel picked."""

    def __init__(
        self, handler: Handler, *, max_msg_bytes: int = DEFAULT_MAX_MSG_BYTES, owner: str = "tester"
    ) -> None:
        self.loop = asyncio.new_event_loop()
        self.ctx = zmq.asyncio.Context()
        self.server = ControlServer(
            "tcp://127.0.0.1:*",
            Dispatcher(owner, handler, get_logger("test-control")),
            max_msg_bytes=max_msg_bytes,
            ctx=self.ctx,
        )
        self.task: asyncio.Task[None] | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert wait_until(lambda: self.server.listening.is_set(), 30), "server did not bind"
        self.endpoint = self.server.bound

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.task = self.loop.create_task(self.server.run())
        with contextlib.suppress(asyncio.CancelledError):  # how stop() ends it
            self.loop.run_until_complete(self.task)

    def alive(self) -> bool:
        return self.task is not None and not self.task.done()

    def stop(self) -> None:
        if self.task is not None:
            self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(10)
        self.ctx.destroy(0)


def sample(cls: type[Command]) -> dict[str, object]:
    """Arguments for every field of ``cls`` (a value the field accepts)."""
    hints = typing.get_type_hints(cls, include_extras=True)
    out: dict[str, object] = {}
    for f in msgspec.structs.fields(cls):
        text = repr(hints[f.name])
        if "list" in text:
            out[f.name] = ["KX-A", "KX-B"]
        elif "Literal" in text:
            out[f.name] = typing.get_args(
                typing.get_args(hints[f.name])[0] if "Annotated" in text else hints[f.name]
            )[-1]
        elif "float" in text:
            out[f.name] = 2.5
        elif "int" in text:
            out[f.name] = 300  # inside every int range the commands declare
        else:
            out[f.name] = "KX-A"
    return out
