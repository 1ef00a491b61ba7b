"""The ``dump`` control command (:class:`Dump`)."""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec

from shared.commands.base import Command


class Dump(Command, tag="dump", frozen=True):
    """Dump the simulator's ground truth as JSON: to ``path``, or in the reply.

    Books, planted arbs and sent frames.
    """

    served_by: ClassVar[tuple[str, ...]] = ("sim",)
    path: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)] | None = None
    """file to write (default: answer with it)"""
