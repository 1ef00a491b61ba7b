"""The ``gaps`` control command (:class:`Gaps`)."""

from __future__ import annotations

from typing import ClassVar

from shared.commands.base import Command


class Gaps(Command, tag="gaps", frozen=True):
    """The gaps the gap filler is repairing: connection, subscription, expected seq, markets pending."""

    served_by: ClassVar[tuple[str, ...]] = ("gapfill",)
