"""``ExchangeSim``: a local Kalshi exchange on one port (WS, REST and the Odds API).

sim = ExchangeSim(cfg, keys={SIM_DEV_KEY_ID: public_key})
await sim.start()          # cfg.port may be 0: sim.port is the one bound
... sim.ws_url, sim.rest_url, sim.tickers, sim.faults.inject("gap"), sim.pause(),
... sim.truth.book(ticker) ...
await sim.stop()
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from services.exchange_sim import odds, rest, rest_candles, rest_history, rest_live
from services.exchange_sim.activity import Engine
from services.exchange_sim.app_key import SIM_KEY
from services.exchange_sim.faults import HTTP_KINDS, KINDS, WS_KINDS, FaultError, FaultPlan, Rule
from services.exchange_sim.hub import Hub
from services.exchange_sim.keyring import KeyRing
from services.exchange_sim.ratelimit import TokenBuckets
from services.exchange_sim.source import ActivitySource
from services.exchange_sim.state import ExchangeState
from services.exchange_sim.truth import Truth
from services.exchange_sim.ws import WS_PATH, ws_handler
from shared.config import SimConfig
from shared.log import BurstLog, get_logger
from shared.tasks import Supervised


class Faults:
    """Run-time fault injection (see :mod:`services.exchange_sim.faults` for the kinds)."""

    kinds = KINDS

    def __init__(self, sim: ExchangeSim) -> None:
        self._sim = sim

    def inject(self, kind: str, **params: Any) -> dict[str, Any]:
        if kind in HTTP_KINDS:
            result = self._sim.plan.arm_http(kind, time.monotonic(), params)
            self._sim.log.info("fault armed", extra={"ctx": result})
            return result
        if kind in WS_KINDS:
            return self._sim.hub.inject_ws(kind, params)
        raise FaultError(f"unknown fault {kind!r}; kinds: {', '.join(KINDS)}")


class ExchangeSim:
    """``tasks``: the group its background loops run in (the sim worker passes its own, so a
    crashed loop fails the worker); alone (tests, benchmarks) it keeps a group of its own,
    whose :attr:`~shared.tasks.Supervised.failure` says whether a loop crashed. ``source``: what
    drives it instead of the activity engine (a recorded session's replay)."""

    def __init__(
        self,
        cfg: SimConfig,
        keys: dict[str, RSAPublicKey] | None = None,
        tasks: Supervised | None = None,
        source: ActivitySource | None = None,
    ) -> None:
        self.cfg = cfg
        self.log = get_logger("sim")
        self.tasks = tasks or Supervised("sim", self._crashed)
        self.burst = BurstLog(self.log)
        self.engine: ActivitySource = source or Engine(
            cfg.seed,
            cfg.markets,
            start_ms=cfg.start_ms,
            lifecycle_every=cfg.lifecycle_every,
            planted_edge=cfg.planted_edge,
            planted_edge_every=cfg.planted_edge_every,
            planted_arb_every=cfg.planted_arb_every,
            # A new run number per start: trade ids never repeat across restarts (see Engine).
            run=cfg.run_id or time.time_ns(),
            log=self.log,
        )
        self.public = ExchangeState(self.engine.initial_events, candles=True)
        for em in self.engine.initial_emissions(int(time.time() * 1000)):
            self.public.apply(em)
        self.truth = Truth(self.public, max_frames=cfg.truth_max_frames, max_events=cfg.truth_max_events)
        self.truth.planted = self.engine.planted
        self.truth.begin()
        self.plan = FaultPlan(cfg.seed, cfg.faults)
        self.keyring = KeyRing(keys, cfg.auth_max_skew_s)
        self.buckets = TokenBuckets(cfg.rest_tier)
        self.hub = Hub(cfg, self.engine, self.public, self.truth, self.plan, self.log)
        self.faults = Faults(self)
        self.odds_requests = 0
        self.port = cfg.port
        self._runner: web.AppRunner | None = None

    # ---- addresses --------------------------------------------------------------------------
    @property
    def ws_url(self) -> str:
        return f"ws://{self._host()}:{self.port}{WS_PATH}"

    @property
    def rest_url(self) -> str:
        return f"http://{self._host()}:{self.port}{rest.API}"

    @property
    def odds_url(self) -> str:
        return f"http://{self._host()}:{self.port}/v4"

    def _host(self) -> str:
        return "127.0.0.1" if self.cfg.host in ("0.0.0.0", "") else self.cfg.host

    @property
    def tickers(self) -> list[str]:
        """Every market ticker the exchange lists (all statuses), in listing order."""
        return list(self.public.markets)

    # ---- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application(middlewares=[rest.rest_guard])
        app[SIM_KEY] = self
        app.router.add_get(WS_PATH, ws_handler)
        # First: their static paths sit beside rest's {ticker} ones.
        rest_history.add_routes(app)
        rest_candles.add_routes(app)
        rest.add_routes(app)
        rest_live.add_routes(app)
        odds.add_routes(app)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.cfg.host, self.cfg.port, reuse_address=True)
        await site.start()
        sockets = getattr(site._server, "sockets", None)
        if sockets:
            self.port = sockets[0].getsockname()[1]
        self.tasks.spawn(self.hub.run_activity(), name="activity")
        for rule in self.plan.periodic():
            self.tasks.spawn(self._periodic(rule), name=f"fault-{rule.kind}")
        self.log.info(
            "exchange simulator listening",
            extra={
                "ctx": {
                    "ws": self.ws_url,
                    "rest": self.rest_url,
                    "markets": len(self.public.markets),
                    "seed": self.cfg.seed,
                    "run_id": self.engine.run_no,
                    "rate": self.cfg.rate or "blast",
                }
            },
        )

    def _crashed(self, what: str, exc: BaseException) -> None:
        self.log.error("simulator task crashed", exc_info=exc, extra={"ctx": {"task": what}})

    async def _periodic(self, rule: Rule) -> None:
        while True:
            await asyncio.sleep(rule.every_s)
            params: dict[str, Any] = {"seconds": rule.duration_s} if rule.duration_s else {}
            try:
                self.faults.inject(rule.kind, **params)
            except FaultError as exc:
                self.burst.event(f"periodic-{rule.kind}", "periodic fault not applied", error=str(exc))

    async def stop(self) -> None:
        # The worker's group is closed before its teardown calls this; our own group is closed here.
        await self.tasks.close()
        for conn in list(self.hub.conns.values()):
            conn.close(1001, b"simulator stopping", reason="shutdown")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.burst.flush()

    # ---- control ----------------------------------------------------------------------------
    def pause(self) -> None:
        """Stop generating market activity (frames already queued are still sent)."""
        self.hub.running.clear()

    def resume(self) -> None:
        self.hub.running.set()

    @property
    def paused(self) -> bool:
        return not self.hub.running.is_set()

    def step(self, n: int = 1) -> None:
        """Run ``n`` activity steps immediately (deterministic tests; works while paused)."""
        self.hub.flush_pending()
        self.hub.step(n)

    async def drained(self, timeout: float = 5.0) -> bool:
        """Wait until every connection's queue and socket buffer are empty (stalled ones excepted)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            busy = [
                c
                for c in self.hub.conns.values()
                if not c.stalled() and (c.out or c.transport.get_write_buffer_size())
            ]
            if not busy:
                return True
            await asyncio.sleep(0.01)
        return False

    def connections(self) -> list[dict[str, Any]]:
        return [
            {
                "conn": c.id,
                "peer": c.peer,
                "queued": len(c.out),
                "written": c.frames_written,
                "subscriptions": [
                    {
                        "sid": s.sid,
                        "channel": s.channel,
                        "seq": s.seq,
                        "markets": len(s.markets),
                        "all": s.all,
                    }
                    for s in c.session.subs.values()
                ],
            }
            for c in self.hub.conns.values()
        ]
