"""The ``spreads`` control command (:class:`Spreads`)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec

from shared.commands.base import Command


class Spreads(Command, tag="spreads", frozen=True):
    """VALID two-sided books ranked by YES spread (ask - bid), widest or narrowest first."""

    served_by: ClassVar[tuple[str, ...]] = ("orderbook",)
    top: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 20
    """rows"""
    order: Literal["widest", "narrowest"] = "widest"
    """which end first"""
