"""The ``refresh`` control command (:class:`Refresh`)."""

from __future__ import annotations

from typing import ClassVar

from shared.commands.base import Command


class Refresh(Command, tag="refresh", frozen=True):
    """Poll the odds now and re-evaluate every market: ``{"odds_events", "signals", "at_ms"}``."""

    served_by: ClassVar[tuple[str, ...]] = ("arb",)
