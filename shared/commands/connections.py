"""The ``connections`` control command (:class:`Connections`)."""

from __future__ import annotations

from typing import ClassVar

from shared.commands.base import Command


class Connections(Command, tag="connections", frozen=True):
    """The simulator's open WebSocket connections and what each subscribed."""

    served_by: ClassVar[tuple[str, ...]] = ("sim",)
