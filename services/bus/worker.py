"""The bus worker: runs the XSUB/XPUB proxy every other worker connects to.

CLI: ``kxfeed bus`` (same as ``kxfeed worker bus``). Endpoints from ``[bus]``. Both proxy
sockets refuse messages over ``[bus] max_msg_bytes``; a socket monitor on each counts the peers
ZeroMQ refuses or drops (``kxfeed_zmq_peer_events_total{socket="bus_xsub"|"bus_xpub"}``).
Bound beyond loopback both are CURVE servers admitting only ``[curve] allowed_clients``; a
refused key is counted in ``kxfeed_curve_rejected_total{socket="bus_xsub"|"bus_xpub"}``.
"""

from __future__ import annotations

import asyncio

import zmq

from shared import ports
from shared.actor import Actor
from shared.bus import Proxy
from shared.zmq_watch import PeerWatch


class BusWorker(Actor):
    name = "bus"

    async def setup(self) -> None:
        bus = self.config.bus
        self.proxy = Proxy(self.zctx, bus.xsub, bus.xpub, bus.proxy_hwm, bus.max_msg_bytes, self.curve)
        front, back = self.proxy.sockets()
        # Monitors are attached before the proxy thread takes the sockets over.
        self.watches = [PeerWatch(front, "bus_xsub"), PeerWatch(back, "bus_xpub")]
        # Port 0 (or *): any free port, reported as <data_dir>/run/bus.xsub.port (and xpub).
        self.reported: list[str] = []
        for what, endpoint, sock in (("xsub", bus.xsub, front), ("xpub", bus.xpub, back)):
            if endpoint.startswith("tcp://") and endpoint.endswith((":0", ":*")):
                bound = str(sock.getsockopt_string(zmq.LAST_ENDPOINT))
                ports.report(self.config.data_dir, self.worker_id, what, int(bound.rpartition(":")[2]))
                self.reported.append(what)
        self.proxy.start()
        self.ready = True
        self.log.info(
            "proxy up",
            extra={"ctx": {"xsub": bus.xsub, "xpub": bus.xpub, "max_msg_bytes": bus.max_msg_bytes}},
        )

    async def main(self) -> None:
        while not self.stopping.is_set():
            if not self.proxy.alive():
                raise RuntimeError(f"bus proxy thread died: {self.proxy.error!r}")
            for watch in self.watches:
                watch.poll()
            await asyncio.sleep(0.2)

    async def teardown(self) -> None:
        self.proxy.stop()
        for what in self.reported:
            ports.withdraw(self.config.data_dir, self.worker_id, what)
        for watch in self.watches:
            watch.close()


WORKER = BusWorker
