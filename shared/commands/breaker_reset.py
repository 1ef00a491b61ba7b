"""The ``breaker_reset`` control command (:class:`BreakerReset`)."""

from __future__ import annotations

from typing import ClassVar

from shared.commands.base import Command


class BreakerReset(Command, tag="breaker_reset", frozen=True):
    """Close arb's circuit breaker after a trip (logged). Answers the ledger summary."""

    served_by: ClassVar[tuple[str, ...]] = ("arb",)
