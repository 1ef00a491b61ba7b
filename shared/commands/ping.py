"""The ``ping`` control command (:class:`Ping`)."""

from __future__ import annotations

from typing import ClassVar

from shared.commands.base import EVERY_WORKER, Command


class Ping(Command, tag="ping", frozen=True):
    """Is the worker alive? Answers ``{"worker": <worker id>, "pid": <pid>}``.

    The supervisor's readiness probe, and the cheapest way to check a control socket.
    """

    served_by: ClassVar[tuple[str, ...]] = (EVERY_WORKER,)
