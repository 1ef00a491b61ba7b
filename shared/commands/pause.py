"""The ``pause`` control command (:class:`Pause`)."""

from __future__ import annotations

from typing import ClassVar

from shared.commands.base import Command


class Pause(Command, tag="pause", frozen=True):
    """Pause the simulator's market activity (connections stay open). Answers ``{"paused": true}``."""

    served_by: ClassVar[tuple[str, ...]] = ("sim",)
