"""The ``ping`` control command (:class:`Ping`)."""

from __future__ import annotations

from typing import Any, ClassVar

from shared.commands.base import EVERY_WORKER, Command, Reply


class PingReply(Reply, frozen=True):
    """Who answered: the worker id and its process id."""

    worker: str
    pid: int


class Ping(Command, tag="ping", frozen=True):
    """Is the worker alive? Answers ``{"worker": <worker id>, "pid": <pid>}``.

    The supervisor's readiness probe, and the cheapest way to check a control socket.
    """

    reply: ClassVar[Any] = PingReply
    served_by: ClassVar[tuple[str, ...]] = (EVERY_WORKER,)
