"""The ``reload`` control command (:class:`Reload`)."""

from __future__ import annotations

from typing import Any, ClassVar

from shared.commands.base import Command


class Reload(Command, tag="reload", frozen=True):
    """Re-read the config file and apply it. Answers ``"reloading"``.

    Workers whose section changed restart.
    """

    reply: ClassVar[Any] = str
    served_by: ClassVar[tuple[str, ...]] = ("supervisor",)
