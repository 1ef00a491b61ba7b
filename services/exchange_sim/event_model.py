"""The simulator's view of one event: its true probabilities and any planted mispricing.

Its own module so that the engine (:mod:`.activity`), the lifecycle (:mod:`.lifecycle`) and
the sportsbook feed (:mod:`.odds`) can all name it without importing one another.
"""

from __future__ import annotations

from services.exchange_sim.catalog import EventDef
from shared.units import ONE_DOLLAR


class EventModel:
    """The simulator's view of an event: true probabilities and any planted mispricing."""

    __slots__ = ("arb_shift", "d", "edge", "fair", "live")

    def __init__(self, d: EventDef) -> None:
        self.d = d
        self.fair = list(d.fair)
        self.edge = 0  # added to market 0's quotes, taken from market 1's
        self.arb_shift = 0  # taken from every market's quotes: YES asks sum below $1
        self.live = True

    def center(self, i: int) -> int:
        c = self.fair[i] - self.arb_shift
        if i == 0:
            c += self.edge
        elif i == 1:
            c -= self.edge
        return max(200, min(ONE_DOLLAR - 200, c))
