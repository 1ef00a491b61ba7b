"""Where the writer's messages come from, and how it gets the ones it missed again.

The worker owns the core, the batches and the flusher; an intake owns its input and its way of
re-delivery: the local bus with the producers' journals behind it (:mod:`intake_bus`), or a
JetStream durable consumer acked after each commit (:mod:`intake_jetstream`). The worker drives
an intake through :class:`Intake`; an intake drives the worker back through :class:`Feed`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Protocol

from services.writer.core import Batch, OfferResult, WriterCore
from shared.bus import Subscriber
from shared.messages import Message


class Input(Protocol):
    """The live messages: the bus subscriber, or the JetStream source."""

    max_batch: int

    async def recv(self) -> list[Message]: ...
    def drain(self) -> list[Message]: ...
    def close(self) -> None: ...


class Feed(Protocol):
    """What an intake may ask of the writer it feeds."""

    core: WriterCore
    counters: dict[str, int]
    stopping: asyncio.Event
    ready: bool

    async def submit(self, mode: str) -> bool: ...
    def count(self, res: OfferResult) -> None: ...
    def subscriber(self, prefixes: list[str], **kw: Any) -> Subscriber: ...
    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]: ...


class Intake(Protocol):
    def recoverable(self, pub: str) -> bool:
        """Whether a hole in ``pub``'s stream can still be filled (else it is counted lost)."""
        ...

    def open(self) -> Input:
        """The live input, with whatever background loops it needs spawned on the feed."""
        ...

    async def replay(self, reason: str, *, final: bool = False) -> None:
        """Deliver again everything after the committed positions; ``final``: the last catch-up
        of a drain, which runs although the worker is stopping."""
        ...

    def committed(self, batch: Batch) -> None:
        """``batch`` is in the database."""
        ...

    async def advance(self) -> None:
        """Move the intake's own cursor up to what is committed (periodically and at the end)."""
        ...

    async def aclose(self) -> None: ...

    def stats(self) -> dict[str, int]: ...
