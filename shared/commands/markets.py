"""The ``markets`` control command (:class:`Markets`)."""

from __future__ import annotations

from typing import ClassVar

from shared.commands.base import Command


class Markets(Command, tag="markets", frozen=True):
    """The poller's markets: ``{"universe": [...], "polled": [...], "feed": [...]}``.

    universe: every market discovery found; polled: the ones this instance polls; feed: the ones
    its REST fallback currently serves.
    """

    served_by: ClassVar[tuple[str, ...]] = ("poller",)
