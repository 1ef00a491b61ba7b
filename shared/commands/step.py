"""The ``step`` control command (:class:`Step`)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import msgspec

from shared.commands.base import Command, Reply


class StepReply(Reply, frozen=True):
    """Steps run since the simulator started."""

    steps: int


class Step(Command, tag="step", frozen=True):
    """Run ``n`` activity steps now. Answers ``{"steps": <total>}``.

    While paused this gives exact, repeatable frames.
    """

    reply: ClassVar[Any] = StepReply
    served_by: ClassVar[tuple[str, ...]] = ("sim",)
    n: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)] = 1
    """steps to run"""
