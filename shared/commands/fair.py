"""The ``fair`` control command (:class:`Fair`)."""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec

from shared.commands.base import Command


class Fair(Command, tag="fair", frozen=True):
    """A watched sports market's fair value (ppm), why, the books behind it and its event match."""

    served_by: ClassVar[tuple[str, ...]] = ("arb",)
    ticker: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    """the market"""
