"""The ``signals`` control command (:class:`Signals`)."""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec

from shared.commands.base import Command


class Signals(Command, tag="signals", frozen=True):
    """The last ``n`` arbitrage signals arb published."""

    served_by: ClassVar[tuple[str, ...]] = ("arb",)
    n: Annotated[int, msgspec.Meta(ge=0, le=100_000)] = 50
    """signals"""
