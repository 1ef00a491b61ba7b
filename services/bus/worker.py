"""The bus worker: runs the XSUB/XPUB proxy every other worker connects to.

CLI: ``kxfeed bus`` (same as ``kxfeed worker bus``). Endpoints from ``[bus]``.
"""

from __future__ import annotations

import asyncio

from shared.actor import Actor
from shared.bus import Proxy


class BusWorker(Actor):
    name = "bus"

    async def setup(self) -> None:
        bus = self.config.bus
        self.proxy = Proxy(self.zctx, bus.xsub, bus.xpub, bus.proxy_hwm)
        self.proxy.start()
        self.ready = True
        self.log.info("proxy up", extra={"ctx": {"xsub": bus.xsub, "xpub": bus.xpub}})

    async def main(self) -> None:
        while not self.stopping.is_set():
            if not self.proxy.alive():
                raise RuntimeError(f"bus proxy thread died: {self.proxy.error!r}")
            await asyncio.sleep(0.2)

    async def teardown(self) -> None:
        self.proxy.stop()


WORKER = BusWorker
