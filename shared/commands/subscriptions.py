"""The ``subscriptions`` control command (:class:`Subscriptions`)."""

from __future__ import annotations

from typing import ClassVar

from shared.commands.base import Command


class Subscriptions(Command, tag="subscriptions", frozen=True):
    """The connector's WebSocket: connection number, markets and the subscriptions it holds."""

    served_by: ClassVar[tuple[str, ...]] = ("connector",)
