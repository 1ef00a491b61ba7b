"""The ``info`` control command (:class:`Info`)."""

from __future__ import annotations

from typing import ClassVar

from shared.commands.base import Command


class Info(Command, tag="info", frozen=True):
    """The simulator: its URLs (it may have bound port 0), seed, rate, markets, paused, steps."""

    served_by: ClassVar[tuple[str, ...]] = ("sim",)
