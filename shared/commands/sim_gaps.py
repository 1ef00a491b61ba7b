"""The ``gaps`` control command (:class:`SimGaps`)."""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec

from shared.commands.base import Command


class SimGaps(Command, tag="gaps", frozen=True):
    """The frames the simulator withheld on connection ``conn`` (gap faults).

    What a gap filler must repair.
    """

    served_by: ClassVar[tuple[str, ...]] = ("sim",)
    conn: Annotated[int, msgspec.Meta(ge=0)]
    """the connection"""
