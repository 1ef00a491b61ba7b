"""The ``resume`` control command (:class:`Resume`)."""

from __future__ import annotations

from typing import Any, ClassVar

from shared.commands.base import Command
from shared.commands.pause import PauseReply


class Resume(Command, tag="resume", frozen=True):
    """Resume the simulator's market activity. Answers ``{"paused": false}``."""

    reply: ClassVar[Any] = PauseReply
    served_by: ClassVar[tuple[str, ...]] = ("sim",)
