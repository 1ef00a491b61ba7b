"""The ``step`` control command (:class:`Step`)."""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec

from shared.commands.base import Command


class Step(Command, tag="step", frozen=True):
    """Run ``n`` activity steps now. Answers ``{"steps": <total>}``.

    While paused this gives exact, repeatable frames.
    """

    served_by: ClassVar[tuple[str, ...]] = ("sim",)
    n: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)] = 1
    """steps to run"""
