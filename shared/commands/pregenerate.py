"""The ``pregenerate`` control command (:class:`Pregenerate`)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import msgspec

from shared.commands.base import Command, Reply


class PregenerateReply(Reply, frozen=True):
    """Steps run, and steps generated but not yet sent."""

    steps: int
    pending: int


class Pregenerate(Command, tag="pregenerate", frozen=True):
    """Generate ``steps`` steps ahead (blast mode, paused): resume sends them at full speed, then pauses.

    Answers ``{"steps": <total>, "pending": <generated, unsent>}``. About 30 us a step.
    """

    reply: ClassVar[Any] = PregenerateReply
    served_by: ClassVar[tuple[str, ...]] = ("sim",)
    steps: Annotated[int, msgspec.Meta(ge=0, le=100_000_000)] = 0
    """steps to generate"""
