"""The ``replay`` control command (:class:`Replay`)."""

from __future__ import annotations

from typing import Any, ClassVar

from shared.commands.base import Command


class Replay(Command, tag="replay", frozen=True):
    """Replay the journals from the committed stream positions. Answers ``"replay requested"``.

    Rows already stored are skipped.
    """

    reply: ClassVar[Any] = str
    served_by: ClassVar[tuple[str, ...]] = ("writer",)
