"""The writer's overrides for ``[writer] source = "jetstream"`` (see :mod:`source_jetstream`).

Mixed in before :class:`~services.writer.worker.WriterWorker` (``worker.JetStreamWriter``): kept
apart so the worker module imports it, and it imports nothing of the worker's.
"""

from __future__ import annotations

from collections.abc import Callable

from services.writer import metrics as m
from services.writer.core import Batch, WriterCore
from services.writer.jsack import config_problems
from services.writer.source_jetstream import JetStreamSource
from shared.actor import Actor
from shared.config import Config, ConfigError, WriterConfig


class JetStreamMode(Actor):
    """The writer's overrides for a JetStream source (no bus subscription, no journals, no
    journal cursor), mixed in before :class:`~services.writer.worker.WriterWorker`."""

    wc: WriterConfig
    core: WriterCore
    counters: dict[str, int]

    def __init__(self, config: Config, *, instance: str = "") -> None:
        problems = config_problems(config)
        if problems:
            raise ConfigError("; ".join(problems))
        super().__init__(config, instance=instance)

    def _recoverable(self) -> Callable[[str], bool]:
        # The source hands the core each stream in seq order (InOrder) and settles holes itself:
        # one reaching the core is one the stream does not hold, to be counted lost at once.
        return lambda pub: False

    def _input(self) -> JetStreamSource:
        self.source = JetStreamSource(
            self.wc, self.config.jetstream, self.worker_id, self.log, self.core.committed, self.core.position
        )
        for s in self.config.jetstream.streams:
            self.spawn(self.source.stream_loop(s.name), name=f"jetstream-{s.name}")
        self.spawn(self.source.ack_loop(), name="jetstream-acks")
        return self.source

    async def _replay(self, reason: str, *, final: bool = False) -> None:
        if final or reason == "start":
            # A drain leaves what was not delivered in the stream for the next start; at the
            # start each consumer is bound afresh at its ack floor anyway.
            return
        self.core.begin_replay()
        m.REPLAYS.labels(reason).inc()
        self.counters["replays"] += 1
        self.source.reset(reason)

    def _after_commit(self, batch: Batch) -> None:
        self.source.committed_keys(list(batch.offsets))

    async def _advance_cursor(self) -> None:
        """No journal is read: JetStream's acks are the cursor."""

    async def teardown(self) -> None:
        if hasattr(self, "source"):
            await self.source.aclose()
            self.source.burst.flush()
        await super().teardown()

    def stats(self) -> dict[str, int]:
        out = super().stats()
        if hasattr(self, "source"):
            out.update(self.source.counts)
            out["js_inflight"] = self.source.ledger.frames
            out["js_connected"] = int(self.source.connected())
        return out
