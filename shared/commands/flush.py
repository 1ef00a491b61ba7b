"""The ``flush`` control command (:class:`Flush`)."""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec

from shared.commands.base import Command


class Flush(Command, tag="flush", frozen=True):
    """Write everything buffered now and wait for the commit (up to ``timeout_s``).

    Answers the writer's stats.
    """

    served_by: ClassVar[tuple[str, ...]] = ("writer",)
    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 10.0
    """seconds to wait for the commit"""
