"""The ``book`` control command (:class:`SimBook`)."""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec

from shared.commands.base import Command


class SimBook(Command, tag="book", frozen=True):
    """The simulator's true book of one market: ``{"ticker", "yes": [[price, size]...], "no": [...]}``."""

    served_by: ClassVar[tuple[str, ...]] = ("sim",)
    ticker: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    """the market"""
