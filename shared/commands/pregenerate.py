"""The ``pregenerate`` control command (:class:`Pregenerate`)."""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec

from shared.commands.base import Command


class Pregenerate(Command, tag="pregenerate", frozen=True):
    """Generate ``steps`` steps ahead (blast mode, paused): resume sends them at full speed, then pauses.

    Answers ``{"steps": <total>, "pending": <generated, unsent>}``. About 30 us a step.
    """

    served_by: ClassVar[tuple[str, ...]] = ("sim",)
    steps: Annotated[int, msgspec.Meta(ge=0, le=100_000_000)] = 0
    """steps to generate"""
