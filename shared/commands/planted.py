"""The ``planted`` control command (:class:`Planted`)."""

from __future__ import annotations

from typing import ClassVar

from shared.commands.base import Command


class Planted(Command, tag="planted", frozen=True):
    """The arbitrage opportunities the simulator planted, and the complement arbs in its books now."""

    served_by: ClassVar[tuple[str, ...]] = ("sim",)
