"""The ``stats`` control command (:class:`Stats`)."""

from __future__ import annotations

from typing import ClassVar

from shared.commands.base import EVERY_WORKER, Command


class Stats(Command, tag="stats", frozen=True):
    """The worker's key counters: ``{"ready": bool, "uptime_ms": int, <counter>: int, ...}``.

    The same counters every heartbeat carries.
    """

    served_by: ClassVar[tuple[str, ...]] = (EVERY_WORKER,)
