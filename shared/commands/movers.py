"""The ``movers`` control command (:class:`Movers`)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec

from shared.commands.base import Command


class Movers(Command, tag="movers", frozen=True):
    """The books whose mid moved most over ``window_s`` (or traded most, ``by`` volume)."""

    served_by: ClassVar[tuple[str, ...]] = ("orderbook",)
    top: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 20
    """rows"""
    window_s: Annotated[float, msgspec.Meta(gt=0)] = 300.0
    """look-back window, seconds"""
    by: Literal["mid", "volume"] = "mid"
    """rank by mid change or contracts traded"""
