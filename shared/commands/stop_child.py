"""The ``stop_child`` control command (:class:`StopChild`)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import msgspec

from shared.commands.base import Command


class StopChild(Command, tag="stop_child", frozen=True):
    """Stop one worker and keep it stopped (``restart`` starts it again). Answers ``"stopping <name>"``."""

    reply: ClassVar[Any] = str
    served_by: ClassVar[tuple[str, ...]] = ("supervisor",)
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    """the worker, as ``kxfeed status`` names it"""
