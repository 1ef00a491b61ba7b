"""The ``sent`` control command (:class:`Sent`)."""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec

from shared.commands.base import Command


class Sent(Command, tag="sent", frozen=True):
    """Frames the simulator sent on connection ``conn``, as text.

    The last ``tail`` frames, or a page of ``count`` from ``start``.
    """

    served_by: ClassVar[tuple[str, ...]] = ("sim",)
    conn: Annotated[int, msgspec.Meta(ge=0)]
    """the connection"""
    start: Annotated[int, msgspec.Meta(ge=0)] | None = None
    """first frame of a page (then ``count`` frames; else the last ``tail``)"""
    count: Annotated[int, msgspec.Meta(ge=0)] = 10_000
    """frames in a page"""
    tail: Annotated[int, msgspec.Meta(ge=0)] = 100
    """the last frames (without ``start``)"""
