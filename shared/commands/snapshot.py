"""The ``snapshot`` control command (:class:`Snapshot`)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import msgspec

from shared.commands.base import Command, Reply


class SnapshotReply(Reply, frozen=True):
    """The markets a snapshot was requested for."""

    requested: list[str]


class Snapshot(Command, tag="snapshot", frozen=True):
    """Request fresh order-book snapshots: ``{"requested": [tickers]}``.

    The connector resubscribes the markets (all of them when ``tickers`` is empty); the gap filler
    fetches each named market's book over REST and publishes it as a resync snapshot (it needs
    ``tickers``: it repairs named markets).
    """

    reply: ClassVar[Any] = SnapshotReply
    served_by: ClassVar[tuple[str, ...]] = ("connector", "gapfill")
    tickers: list[Annotated[str, msgspec.Meta(min_length=1, max_length=128)]] = []
    """market tickers (connector: empty means every market)"""
