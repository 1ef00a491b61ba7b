"""The ``restart`` control command (:class:`Restart`)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import msgspec

from shared.commands.base import Command


class Restart(Command, tag="restart", frozen=True):
    """Restart one worker (stop it, then start it again). Answers ``"restarting <name>"``."""

    reply: ClassVar[Any] = str
    served_by: ClassVar[tuple[str, ...]] = ("supervisor",)
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    """the worker, as ``kxfeed status`` names it"""
