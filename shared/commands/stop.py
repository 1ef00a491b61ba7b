"""The ``stop`` control command (:class:`Stop`)."""

from __future__ import annotations

from typing import Any, ClassVar

from shared.commands.base import EVERY_WORKER, Command


class Stop(Command, tag="stop", frozen=True):
    """Stop this process: drain, tear down, exit 0. Answers ``"stopping"``.

    Sent to the supervisor it stops the whole pipeline, workers in reverse start order.
    """

    reply: ClassVar[Any] = str
    served_by: ClassVar[tuple[str, ...]] = (EVERY_WORKER,)
