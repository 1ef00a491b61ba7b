"""Support for the connector integration tests (no tests here): the real simulator, a real
bus proxy, the connector worker in this process, and a bus tap that rebuilds books.

The tap's book rebuild is a deliberately tiny reference (not the orderbook worker):
a snapshot replaces a book and makes it valid, a delta applies to a valid book of the
same (conn, sid) with a higher xseq, a BookState INVALID or an open Gap stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq
from prometheus_client import REGISTRY

from services.connector.worker import ConnectorWorker
from services.exchange_sim.server import ExchangeSim
from shared.bus import Proxy, Subscriber
from shared.config import Config, SimConfig
from shared.kalshi.auth import SIM_DEV_KEY_ID, ensure_dev_keypair, load_public_key
from shared.messages import BookDelta, BookSnapshot, BookState, Gap, Message
from tests.support.config import make_config


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class RefBook:
    __slots__ = ("conn", "no", "sid", "valid", "xseq", "yes")

    def __init__(self, m: BookSnapshot) -> None:
        self.yes = dict(m.yes)
        self.no = dict(m.no)
        self.conn, self.sid, self.xseq = m.conn, m.sid, m.xseq
        self.valid = True


class Tap:
    """Every bus message, and books rebuilt from them."""

    def __init__(self, ctx: zmq.Context[zmq.Socket[bytes]], xpub: str) -> None:
        self.sub = Subscriber(ctx, xpub, [""])
        self.msgs: list[Message] = []
        self.books: dict[str, RefBook] = {}
        self.problems: list[str] = []
        self.last_rx = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batch = await self.sub.recv()
            self.last_rx = time.monotonic()
            for m in batch:
                self.msgs.append(m)
                self._apply(m)

    def _apply(self, m: Message) -> None:
        if isinstance(m, BookSnapshot):
            self.books[m.ticker] = RefBook(m)
        elif isinstance(m, BookDelta):
            b = self.books.get(m.ticker)
            if b is None or not b.valid or (b.conn, b.sid) != (m.conn, m.sid) or m.xseq <= b.xseq:
                return
            levels = b.yes if m.side == "yes" else b.no
            new = levels.get(m.price, 0) + m.delta
            if new < 0:
                self.problems.append(f"negative level {m}")
                b.valid = False
            elif new:
                levels[m.price] = new
            else:
                levels.pop(m.price, None)
            b.xseq = m.xseq
        elif isinstance(m, BookState) and not m.valid:
            b = self.books.get(m.ticker)
            if b is not None:
                b.valid = False
        elif isinstance(m, Gap) and m.status == "open":
            for t in m.tickers:
                b = self.books.get(t)
                if b is not None:
                    b.valid = False

    def of(self, kind: type) -> list[Any]:
        return [m for m in self.msgs if isinstance(m, kind)]

    async def quiet(self, for_s: float = 0.3, limit: float = 10.0) -> None:
        # Quiet is measured from the call too: a stream silent *before* it proves nothing about what
        # the caller just triggered.
        started = time.monotonic()
        deadline = started + limit
        while time.monotonic() < deadline:
            if time.monotonic() - max(self.last_rx, started) >= for_s:
                return
            await asyncio.sleep(0.05)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self.sub.close()


def channel_sid(worker: ConnectorWorker, channel: str) -> int:
    """The sid of the connector's one live subscription to ``channel``."""
    s = worker.session
    assert s is not None
    sids = {sub.sid for sub in s.table.by_sid.values() if sub.channel == channel}
    assert len(sids) == 1, sids
    return sids.pop()


@dataclass
class Stack:
    sim: ExchangeSim
    worker: ConnectorWorker
    tap: Tap
    cfg: Config
    task: asyncio.Task[int]

    async def until(self, pred: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while not pred():
            if self.task.done():
                raise AssertionError(f"connector exited ({self.task.result()}) while waiting for {what}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; connector stats: {self.worker.stats()}")
            await asyncio.sleep(0.02)

    def connected(self) -> bool:
        return bool(
            self.worker.ready and self.worker.connected_at is not None and self.worker.session is not None
        )

    def book_sid(self) -> int:
        return channel_sid(self.worker, "orderbook_delta")

    async def settle(self) -> None:
        """A quiet moment: the exchange stops, everything sent is read and published."""
        self.sim.pause()
        assert await self.sim.drained(10.0)
        await self.until(
            lambda: not self.worker.recovery.open and not self.worker.recovery.invalid, 10.0, "recovery"
        )
        await self.tap.quiet(0.4)

    def assert_books_match_truth(self) -> int:
        """Every followed market's rebuilt book equals the simulator's truth; returns how many."""
        assert not self.tap.problems, self.tap.problems[:3]
        markets = self.worker.markets.tickers()
        assert markets
        for t in markets:
            b = self.tap.books.get(t)
            assert b is not None, f"no book for {t}"
            assert b.valid, f"{t} is not valid on the bus"
            yes, no = self.sim.truth.book(t)
            assert (b.yes, b.no) == (dict(yes), dict(no)), f"{t}: bus book differs from the exchange"
        return len(markets)


async def start_sim(tmp: Path, sim: dict[str, Any] | None = None) -> ExchangeSim:
    """The simulator in this event loop on a port the kernel picked, trusting the dev key in ``tmp``."""
    _, pem = ensure_dev_keypair(tmp)
    sim_cfg = SimConfig(**{"port": 0, "markets": 10, "rate": 150.0, "seed": 11, **(sim or {})})
    exchange = ExchangeSim(sim_cfg, keys={SIM_DEV_KEY_ID: load_public_key(pem)})
    await exchange.start()
    return exchange


@contextlib.asynccontextmanager
async def tapped_bus(cfg: Config) -> AsyncIterator[Tap]:
    """A real bus proxy on ``cfg``'s endpoints and a :class:`Tap` on it, closed after."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    proxy = Proxy(ctx, cfg.bus.xsub, cfg.bus.xpub, 1_000_000)
    proxy.start()
    tap = Tap(ctx, cfg.bus.xpub)
    tap.start()
    try:
        await asyncio.sleep(0.2)  # the tap's subscription reaches the proxy before anything is published
        yield tap
    finally:
        tap.close()
        proxy.stop()
        ctx.destroy(linger=0)


@contextlib.asynccontextmanager
async def stack(
    tmp: Path,
    *,
    sim: dict[str, Any] | None = None,
    connector: dict[str, Any] | None = None,
    start: bool = True,
) -> AsyncIterator[Stack]:
    _, pem = ensure_dev_keypair(tmp)
    sim_cfg = SimConfig(**{"port": 0, "markets": 10, "rate": 150.0, "seed": 11, **(sim or {})})
    exchange = ExchangeSim(sim_cfg, keys={SIM_DEV_KEY_ID: load_public_key(pem)})
    await exchange.start()
    cfg = make_config(
        tmp,
        kalshi={"ws_url": exchange.ws_url, "rest_url": exchange.rest_url},
        connector={
            "backoff_initial_s": 0.05,
            "backoff_max_s": 0.2,
            "auth_backoff_s": 0.3,
            "resync_timeout_s": 2.0,
            **(connector or {}),
        },
        journal={"dir": str(tmp / "journal"), "fsync": "never"},
    )
    async with tapped_bus(cfg) as tap:
        worker = ConnectorWorker(cfg)
        task = asyncio.create_task(worker.serve())
        st = Stack(exchange, worker, tap, cfg, task)
        try:
            if start:
                await st.until(st.connected, 10.0, "first subscription")
            yield st
        finally:
            worker.request_stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 10.0)
            await exchange.stop()
