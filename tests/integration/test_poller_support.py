"""Support for the poller and gap filler integration tests (no tests here): the real exchange
simulator, a real bus proxy, a bus tap, and any set of workers running in this event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq

from services.exchange_sim.server import ExchangeSim
from shared.actor import Actor
from shared.bus import Proxy
from shared.config import Config, SimConfig
from shared.kalshi.auth import SIM_DEV_KEY_ID, ensure_dev_keypair, load_public_key
from tests.integration.test_connector_support import Tap, metric
from tests.support.config import make_config

__all__ = ["Rig", "metric", "rig"]


@dataclass
class Rig:
    sim: ExchangeSim
    cfg: Config
    tap: Tap
    workers: dict[str, Actor] = field(default_factory=dict)
    tasks: dict[str, asyncio.Task[int]] = field(default_factory=dict)

    def start(self, cls: type[Actor]) -> Actor:
        w = cls(self.cfg)
        self.workers[w.worker_id] = w
        self.tasks[w.worker_id] = asyncio.create_task(w.serve())
        return w

    async def stop(self, name: str) -> int:
        self.workers[name].request_stop()
        code = await asyncio.wait_for(self.tasks[name], 15.0)
        del self.workers[name], self.tasks[name]
        return code

    async def until(self, pred: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while not pred():
            for name, task in self.tasks.items():
                if task.done():
                    raise AssertionError(f"{name} exited ({task.result()}) while waiting for {what}")
            if time.monotonic() > deadline:
                stats = {n: w.stats() for n, w in self.workers.items()}
                raise AssertionError(f"timed out waiting for {what}; stats: {stats}")
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def rig(
    tmp: Path, *, sim: dict[str, Any] | None = None, **sections: dict[str, Any]
) -> AsyncIterator[Rig]:
    """Simulator + bus proxy + tap; start workers with :meth:`Rig.start`. ``sections``
    override config sections (``connector={...}``, ``poller={...}``, ...)."""
    _, pem = ensure_dev_keypair(tmp)
    sim_cfg = SimConfig(**{"port": 0, "markets": 10, "rate": 150.0, "seed": 11, **(sim or {})})
    exchange = ExchangeSim(sim_cfg, keys={SIM_DEV_KEY_ID: load_public_key(pem)})
    await exchange.start()
    fast_connector = {
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.2,
        "auth_backoff_s": 0.3,
        **sections.pop("connector", {}),
    }
    cfg = make_config(
        tmp,
        kalshi={"ws_url": exchange.ws_url, "rest_url": exchange.rest_url},
        connector=fast_connector,
        journal={"dir": str(tmp / "journal"), "fsync": "never"},
        **sections,
    )
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    proxy = Proxy(ctx, cfg.bus.xsub, cfg.bus.xpub, 1_000_000)
    proxy.start()
    tap = Tap(ctx, cfg.bus.xpub)
    tap.start()
    await asyncio.sleep(0.2)  # the tap's subscription reaches the proxy before anything is published
    r = Rig(exchange, cfg, tap)
    try:
        yield r
    finally:
        for name in reversed(list(r.workers)):
            r.workers[name].request_stop()
        for task in r.tasks.values():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 15.0)
        tap.close()
        await exchange.stop()
        proxy.stop()
        ctx.destroy(linger=0)
