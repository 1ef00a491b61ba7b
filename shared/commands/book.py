"""The ``book`` control command (:class:`Book`)."""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec

from shared.commands.base import Command


class Book(Command, tag="book", frozen=True):
    """One live L2 book from the orderbook worker: state, seq, best bid/ask and ``depth`` levels a side."""

    served_by: ClassVar[tuple[str, ...]] = ("orderbook",)
    ticker: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    """the market"""
    depth: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 10
    """levels a side (0: every level)"""
