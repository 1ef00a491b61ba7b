"""The ``ledger`` control command (:class:`Ledger`)."""

from __future__ import annotations

from typing import ClassVar

from shared.commands.base import Command


class Ledger(Command, tag="ledger", frozen=True):
    """arb's paper ledger: exposure, P&L and the circuit breaker's state."""

    served_by: ClassVar[tuple[str, ...]] = ("arb",)
