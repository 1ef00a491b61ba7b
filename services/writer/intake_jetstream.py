"""``[writer] source = "jetstream"``: the writer fed by a JetStream durable consumer
(:mod:`source_jetstream`) instead of the bus. No bus subscription, no journals, no journal
cursor: JetStream's acks, sent once a batch committed, are the cursor.
"""

from __future__ import annotations

import logging

from services.writer import metrics as m
from services.writer.core import Batch
from services.writer.intake import Feed, Input
from services.writer.source_jetstream import JetStreamSource
from shared.config import Config, WriterConfig


class JetStreamIntake:
    def __init__(
        self, feed: Feed, config: Config, wc: WriterConfig, worker_id: str, log: logging.Logger
    ) -> None:
        self.feed = feed
        self.config = config
        self.wc = wc
        self.worker_id = worker_id
        self.log = log
        self.source: JetStreamSource | None = None

    def recoverable(self, pub: str) -> bool:
        # The source hands the core each stream in seq order (InOrder) and settles holes itself:
        # one reaching the core is one the stream does not hold, to be counted lost at once.
        return False

    def open(self) -> Input:
        core = self.feed.core
        self.source = JetStreamSource(
            self.wc, self.config.jetstream, self.worker_id, self.log, core.committed, core.position
        )
        for s in self.config.jetstream.streams:
            self.feed.spawn(self.source.stream_loop(s.name), name=f"jetstream-{s.name}")
        self.feed.spawn(self.source.ack_loop(), name="jetstream-acks")
        return self.source

    async def replay(self, reason: str, *, final: bool = False) -> None:
        if final or reason == "start" or self.source is None:
            # A drain leaves what was not delivered in the stream for the next start; at the
            # start each consumer is bound afresh at its ack floor anyway.
            return
        self.feed.core.begin_replay()
        m.REPLAYS.labels(reason).inc()
        self.feed.counters["replays"] += 1
        self.source.reset(reason)

    def committed(self, batch: Batch) -> None:
        if self.source is not None:
            self.source.committed_keys(list(batch.offsets))

    async def advance(self) -> None:
        """No journal is read: JetStream's acks are the cursor."""

    async def aclose(self) -> None:
        if self.source is not None:
            await self.source.aclose()
            self.source.burst.flush()

    def stats(self) -> dict[str, int]:
        if self.source is None:
            return {}
        return {
            **self.source.counts,
            "js_inflight": self.source.ledger.frames,
            "js_connected": int(self.source.connected()),
        }
