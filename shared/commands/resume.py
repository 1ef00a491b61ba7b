"""The ``resume`` control command (:class:`Resume`)."""

from __future__ import annotations

from typing import ClassVar

from shared.commands.base import Command


class Resume(Command, tag="resume", frozen=True):
    """Resume the simulator's market activity. Answers ``{"paused": false}``."""

    served_by: ClassVar[tuple[str, ...]] = ("sim",)
