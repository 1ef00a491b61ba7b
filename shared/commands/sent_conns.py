"""The ``sent_conns`` control command (:class:`SentConns`)."""

from __future__ import annotations

from typing import ClassVar

from shared.commands.base import Command


class SentConns(Command, tag="sent_conns", frozen=True):
    """Per connection: frames sent, whether the record was truncated, frames withheld."""

    served_by: ClassVar[tuple[str, ...]] = ("sim",)
