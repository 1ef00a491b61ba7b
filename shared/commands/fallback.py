"""The ``fallback`` control command (:class:`Fallback`)."""

from __future__ import annotations

from typing import ClassVar

from shared.commands.base import Command


class Fallback(Command, tag="fallback", frozen=True):
    """The REST fallback: whether it is enabled, the markets it serves and each feed's health."""

    served_by: ClassVar[tuple[str, ...]] = ("poller",)
