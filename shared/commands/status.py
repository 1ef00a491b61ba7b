"""The ``status`` control command (:class:`Status`)."""

from __future__ import annotations

from typing import ClassVar

from shared.commands.base import Command


class Status(Command, tag="status", frozen=True):
    """Every worker the supervisor runs: state, pid, restarts, readiness, last heartbeat.

    What ``kxfeed status`` prints.
    """

    served_by: ClassVar[tuple[str, ...]] = ("supervisor",)
