"""The ``unmatched`` control command (:class:`Unmatched`)."""

from __future__ import annotations

from typing import ClassVar

from shared.commands.base import Command


class Unmatched(Command, tag="unmatched", frozen=True):
    """Sports markets arb could not match to a sportsbook event, with the reason."""

    served_by: ClassVar[tuple[str, ...]] = ("arb",)
