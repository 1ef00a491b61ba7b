"""The ``stale`` control command (:class:`Stale`)."""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec

from shared.commands.base import Command


class Stale(Command, tag="stale", frozen=True):
    """INVALID books (with the reason), then VALID books unchanged for ``older_than_s``."""

    served_by: ClassVar[tuple[str, ...]] = ("orderbook",)
    top: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 20
    """rows"""
    older_than_s: Annotated[float, msgspec.Meta(gt=0)] | None = None
    """age limit, seconds (default [orderbook] stale_after_s)"""
