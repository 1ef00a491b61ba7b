"""``ReplayServer``: a recorded session served on Kalshi's WebSocket and REST, as the simulator.

server = ReplayServer(cfg.sim, load(journal_dir, window, tickers), speed=None)  # None: max
await server.start()       # cfg.port may be 0: server.port is the one bound
... server.ws_url, server.rest_url; a client subscribes as to Kalshi ...
await server.finished.wait()
await server.stop()

The simulator's front end (signed handshake, sessions, per-subscription seqs, the dispatcher,
REST discovery) fed by :class:`~services.exchange_sim.replay_source.ReplaySource` instead of
its engine: a subscriber gets the books as they stood at the window's start, then the
window's deltas, trades and tickers at the recorded pace times ``speed`` (max: as fast as it
reads). The clock starts once every replayed market has a book subscription, or
``start_after_s`` after the first subscription, whichever comes first: a client subscribing
market by market still gets the window from its start, and one taking only some markets does
not wait forever.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from prometheus_client import Counter

from services.exchange_sim.emission import CH_BOOK
from services.exchange_sim.replay_record import Recording, format_ns
from services.exchange_sim.replay_source import ReplaySource
from services.exchange_sim.server import ExchangeSim
from shared.config import SimConfig
from shared.log import get_logger

SKIPPED = Counter(
    "kxfeed_replay_skipped_total", "Journal records a replay could not use, by reason", ["reason"]
)
#: Paced replay's steps per second: how often it looks for what is due (1 ms resolution).
PACED_RATE = 1000.0
_POLL_S = 0.005


def replay_config(cfg: SimConfig, speed: float | None) -> SimConfig:
    """The simulator's settings for a replay: no faults, no lifecycle, no ground-truth logs."""
    return msgspec.structs.replace(
        cfg,
        rate=0.0 if speed is None else PACED_RATE,
        faults="",
        lifecycle_every=0,
        truth_max_frames=0,
        truth_max_events=100_000,
    )


class ReplayServer:
    def __init__(
        self,
        cfg: SimConfig,
        rec: Recording,
        *,
        speed: float | None,
        keys: dict[str, RSAPublicKey] | None = None,
        start_after_s: float = 2.0,
    ) -> None:
        if not 0 <= start_after_s <= 3600:
            raise ValueError(f"start_after_s must be within 0..3600, not {start_after_s}")
        self.log = get_logger("replay")
        self.rec = rec
        self.speed = speed
        self.start_after_s = start_after_s
        self.source = ReplaySource(rec, speed, self.log)
        self.sim = ExchangeSim(replay_config(cfg, speed), keys, source=self.source)
        self.source.attach(self.sim.public)
        self.source.on_end = self._ended
        self.sim.pause()  # nothing is replayed before the clock starts
        self.started = asyncio.Event()
        self.finished = asyncio.Event()
        self._first_sub: float | None = None
        self._t0 = 0.0

    @property
    def port(self) -> int:
        return self.sim.port

    @property
    def ws_url(self) -> str:
        return self.sim.ws_url

    @property
    def rest_url(self) -> str:
        return self.sim.rest_url

    async def start(self) -> None:
        for reason, n in self.rec.skipped.items():
            SKIPPED.labels(reason).inc(n)
        if self.rec.skipped:
            self.log.warning(
                "replay: journal records not replayed (the recording lost or garbled them)",
                extra={"ctx": dict(self.rec.skipped)},
            )
        await self.sim.start()
        self.sim.tasks.spawn(self._clock(), name="replay-clock")
        since, until = self.rec.window
        self.log.info(
            "replay serving",
            extra={
                "ctx": {
                    "ws": self.ws_url,
                    "rest": self.rest_url,
                    "since": format_ns(since or self.rec.first_ns),
                    "until": format_ns(min(until, self.rec.last_ns)),
                    "markets": len(self.rec.markets),
                    "messages": sum(self.rec.counts.values()),
                    "speed": self.speed or "max",
                }
            },
        )

    async def _clock(self) -> None:
        """Start the replay once the subscribers are in place (see the module doc)."""
        wanted = set(self.rec.markets)
        while True:
            await asyncio.sleep(_POLL_S)
            conns = list(self.sim.hub.conns.values())
            if not any(c.session.subs for c in conns):
                continue
            now = time.monotonic()
            if self._first_sub is None:
                self._first_sub = now
            booked: set[str] = set()
            for c in conns:
                if c.session.alls[CH_BOOK]:
                    booked = wanted
                    break
                booked.update(c.session.routes[CH_BOOK])
            if wanted <= booked or now - self._first_sub >= self.start_after_s:
                break
        self._t0 = time.monotonic()
        self.source.start()
        self.started.set()
        self.sim.resume()
        self.log.info("replay started", extra={"ctx": {"subscribed_markets": len(booked & wanted)}})

    def _ended(self) -> None:
        # Called from the dispatcher's loop as the last message is handed over; the frames
        # still queued are written after it. Pausing stops the blast loop asking for more.
        self.sim.pause()
        self.finished.set()
        self.log.info(
            "replay finished: every recorded message of the window is out",
            extra={"ctx": {"messages": self.source.sent, "seconds": round(time.monotonic() - self._t0, 3)}},
        )

    def stats(self) -> dict[str, Any]:
        return {
            "connections": len(self.sim.hub.conns),
            "replayed": self.source.sent,
            "started": self.started.is_set(),
            "finished": self.finished.is_set(),
            "frames_written": sum(c.frames_written for c in self.sim.hub.conns.values()),
        }

    async def stop(self) -> None:
        await self.sim.stop()
