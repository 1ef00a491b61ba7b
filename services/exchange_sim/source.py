"""What drives the simulated exchange: the activity engine, or a recorded session's replay.

:class:`~services.exchange_sim.server.ExchangeSim` and the :class:`~services.exchange_sim.hub.Hub`
take any source with this shape, so the same WebSocket and REST front end serves generated
activity (:class:`~services.exchange_sim.activity.Engine`) or what kxfeed once recorded
(:class:`~services.exchange_sim.replay_source.ReplaySource`).
"""

from __future__ import annotations

from typing import Any, Protocol

from services.exchange_sim.catalog import EventDef
from services.exchange_sim.emission import Emission
from services.exchange_sim.event_model import EventModel


class ActivitySource(Protocol):
    #: Events listed at start (REST lists them; the public state is built from them).
    initial_events: list[EventDef]
    #: Mispricings planted on purpose (the ground truth reports them).
    planted: list[dict[str, Any]]
    #: Mixed into trade ids, logged at start.
    run_no: int

    def initial_emissions(self, now_ms: int) -> list[Emission]:
        """State-only emissions that set the starting books and statistics."""
        ...

    def step(self, now_ms: int) -> list[Emission]: ...

    def run(self, n: int, now_ms: int) -> list[Emission]: ...

    def sports_models(self) -> list[EventModel]:
        """The sports events' pricing models (the Odds API quotes them)."""
        ...
