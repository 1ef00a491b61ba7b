"""What the simulator's HTTP handlers (:mod:`.ws`, :mod:`.rest`, :mod:`.odds`) use of the
running simulator, and the aiohttp key they find it under.

A Protocol rather than :class:`services.exchange_sim.server.ExchangeSim` itself: the server
imports the handlers to route them, so the handlers name only the parts they use (no import
cycle, and a handler's reach into the simulator is written down here).
"""

from __future__ import annotations

from typing import Protocol

from aiohttp import web

from services.exchange_sim.faults import FaultPlan
from services.exchange_sim.hub import Hub
from services.exchange_sim.keyring import KeyRing
from services.exchange_sim.ratelimit import TokenBuckets
from services.exchange_sim.source import ActivitySource
from services.exchange_sim.state import ExchangeState
from shared.config import SimConfig
from shared.log import BurstLog


class ServedSim(Protocol):
    cfg: SimConfig
    #: one event per refused or faulted request, rate limited
    burst: BurstLog
    #: injected HTTP faults (rest5xx, rate429, auth401)
    plan: FaultPlan
    keyring: KeyRing
    #: REST rate limit per caller
    buckets: TokenBuckets
    #: the state REST answers from (what a client could have seen)
    public: ExchangeState
    #: WebSocket connections and their subscriptions
    hub: Hub
    #: the sportsbook odds come from the engine's sports events
    engine: ActivitySource
    #: Odds API requests answered (reported in the quota headers)
    odds_requests: int


SIM_KEY: web.AppKey[ServedSim] = web.AppKey("kxfeed_sim")
