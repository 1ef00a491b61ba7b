"""The ``pause`` control command (:class:`Pause`)."""

from __future__ import annotations

from typing import Any, ClassVar

from shared.commands.base import Command, Reply


class PauseReply(Reply, frozen=True):
    """Whether the simulator is paused now."""

    paused: bool


class Pause(Command, tag="pause", frozen=True):
    """Pause the simulator's market activity (connections stay open). Answers ``{"paused": true}``."""

    reply: ClassVar[Any] = PauseReply
    served_by: ClassVar[tuple[str, ...]] = ("sim",)
