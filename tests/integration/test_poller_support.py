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

from services.exchange_sim.server import ExchangeSim
from shared.actor import Actor
from shared.config import Config
from tests.integration.test_connector_support import Tap, metric, start_sim, tapped_bus
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
    exchange = await start_sim(tmp, sim)
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
    async with tapped_bus(cfg) as tap:
        r = Rig(exchange, cfg, tap)
        try:
            yield r
        finally:
            for name in reversed(list(r.workers)):
                r.workers[name].request_stop()
            for task in r.tasks.values():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(task, 15.0)
            await exchange.stop()
