"""The ``discover`` control command (:class:`Discover`)."""

from __future__ import annotations

from typing import Any, ClassVar

from shared.commands.base import Command


class Discover(Command, tag="discover", frozen=True):
    """Run market discovery now instead of at the next interval. Answers ``"discovering"``."""

    reply: ClassVar[Any] = str
    served_by: ClassVar[tuple[str, ...]] = ("poller",)
