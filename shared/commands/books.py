"""The ``books`` control command (:class:`Books`)."""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec

from shared.commands.base import Command


class Books(Command, tag="books", frozen=True):
    """The simulator's true books: ``{ticker: {"yes": [...], "no": [...]}}``."""

    served_by: ClassVar[tuple[str, ...]] = ("sim",)
    tickers: list[Annotated[str, msgspec.Meta(min_length=1, max_length=128)]] = []
    """only these markets (empty: every market)"""
