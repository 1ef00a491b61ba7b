"""The ``hashes`` control command (:class:`Hashes`)."""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec

from shared.commands.base import Command


class Hashes(Command, tag="hashes", frozen=True):
    """Each book's state hash: ``{ticker: {"valid", "xseq", "hash"}}`` (what arb seeding compares)."""

    served_by: ClassVar[tuple[str, ...]] = ("orderbook",)
    tickers: list[Annotated[str, msgspec.Meta(min_length=1, max_length=128)]] = []
    """only these markets (empty: every book)"""
