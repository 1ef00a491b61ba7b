"""The ``sent_times`` control command (:class:`SentTimes`)."""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec

from shared.commands.base import Command


class SentTimes(Command, tag="sent_times", frozen=True):
    """When each frame on connection ``conn`` was sent (monotonic ns, in send order)."""

    served_by: ClassVar[tuple[str, ...]] = ("sim",)
    conn: Annotated[int, msgspec.Meta(ge=0)]
    """the connection"""
