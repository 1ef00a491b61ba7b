"""The ``sim`` worker: runs the exchange simulator under the supervisor, honcho or alone.

Control commands (``kxfeed sim ACTION`` sends them; any control client can):

- ``inject {kind, ...params}``  fault injection (see :mod:`services.exchange_sim.faults`)
- ``pause`` / ``resume`` / ``step {n}``  market activity
- ``pregenerate {steps}``  blast mode, paused: generate ``steps`` ahead; ``resume`` sends exactly
  them as fast as the clients read, then pauses (benchmarks measure the pipeline, not the engine)
- ``info``  URLs, seed, run id (mixed into trade ids), market count, paused, steps, pending
  (generated ahead, not yet sent)
- ``book {ticker}`` / ``books {tickers?}``  true books ({"yes": [[price, size]...], "no": ...}, integer units)
- ``dump {path?}``  final books, statuses and planted mispricings (written to ``path`` when given)
- ``planted``  the planted edges and complement arbitrages, and the arbitrages in the books now
- ``connections``  open WS connections with their subscriptions
- ``sent {conn, tail}`` / ``gaps {conn}``  frames sent to a connection / seqs withheld from it;
  ``sent {conn, start, count}`` pages through all of them from the first
- ``sent_times {conn}``  when each write to a connection left: [[first frame index, wall ns], ...]
- ``sent_conns``  every connection the ground truth remembers (open or closed): frames kept,
  frames that fell off the log, seqs withheld (end-to-end tests compare all of them)
"""

from __future__ import annotations

from typing import Any

from services.exchange_sim.faults import FaultError, parse_spec
from services.exchange_sim.keyring import trusted_keys
from services.exchange_sim.server import ExchangeSim
from shared import ports
from shared.actor import Actor
from shared.commands.base import Command
from shared.commands.books import Books
from shared.commands.connections import Connections
from shared.commands.dump import Dump
from shared.commands.fault import Fault
from shared.commands.info import Info
from shared.commands.inject import Inject
from shared.commands.pause import Pause, PauseReply
from shared.commands.planted import Planted
from shared.commands.pregenerate import Pregenerate, PregenerateReply
from shared.commands.resume import Resume
from shared.commands.sent import Sent
from shared.commands.sent_conns import SentConns
from shared.commands.sent_times import SentTimes
from shared.commands.sim_book import SimBook
from shared.commands.sim_gaps import SimGaps
from shared.commands.step import Step, StepReply
from shared.commands.table import CommandHandler
from shared.config import Config


def _levels(book: dict[int, int]) -> list[list[int]]:
    return [[p, book[p]] for p in sorted(book)]


class SimWorker(Actor):
    name = "sim"

    @classmethod
    def check_config(cls, config: Config) -> list[str]:
        if not config.sim.faults:
            return []
        try:
            parse_spec(config.sim.faults)
        except FaultError as exc:
            return [f"[sim] faults: {exc}"]
        return []

    async def setup(self) -> None:
        cfg = self.config.sim
        keys = trusted_keys(self.config.data_dir, list(cfg.public_keys))
        self.sim = ExchangeSim(cfg, keys, tasks=self.tasks)
        await self.sim.start()
        if cfg.port == 0:  # any free port: the clients read the one bound from the data dir
            ports.report(self.config.data_dir, "sim", "http", self.sim.port)
        self.ready = True

    async def teardown(self) -> None:
        sim = getattr(self, "sim", None)
        if sim is not None:
            await sim.stop()
            if self.config.sim.port == 0:
                ports.withdraw(self.config.data_dir, "sim", "http")

    def stats(self) -> dict[str, int]:
        sim = getattr(self, "sim", None)
        if sim is None:
            return {}
        return {
            "connections": len(sim.hub.conns),
            "steps": sim.hub.steps,
            "markets": len(sim.public.markets),
            "frames_written": sum(c.frames_written for c in sim.hub.conns.values()),
        }

    def commands(self) -> dict[type[Command], CommandHandler]:
        return {
            Inject: self._on_inject,
            Fault: self._on_inject,
            Pause: self._on_pause,
            Resume: self._on_resume,
            Step: self._on_step,
            Pregenerate: self._on_pregenerate,
            Info: self._on_info,
            SimBook: self._on_book,
            Books: self._on_books,
            Dump: self._on_dump,
            Planted: self._on_planted,
            Connections: self._on_connections,
            Sent: self._on_sent,
            SentTimes: self._on_sent_times,
            SimGaps: self._on_gaps,
            SentConns: self._on_sent_conns,
        }

    async def _on_inject(self, cmd: Inject) -> Any:
        params = {k: v for k, v in cmd.wire_args().items() if k != "kind"}
        return self.sim.faults.inject(cmd.kind, **params)

    async def _on_pause(self, _: Pause) -> PauseReply:
        self.sim.pause()
        return PauseReply(paused=True)

    async def _on_resume(self, _: Resume) -> PauseReply:
        self.sim.resume()
        return PauseReply(paused=False)

    async def _on_step(self, cmd: Step) -> StepReply:
        self.sim.step(cmd.n)
        return StepReply(steps=self.sim.hub.steps)

    async def _on_pregenerate(self, cmd: Pregenerate) -> PregenerateReply:
        pending = await self.sim.hub.prepare_blast(cmd.steps)
        return PregenerateReply(steps=self.sim.hub.steps, pending=pending)

    async def _on_info(self, _: Info) -> dict[str, Any]:
        sim = self.sim
        return {
            "ws_url": sim.ws_url,
            "rest_url": sim.rest_url,
            "odds_url": sim.odds_url,
            "seed": sim.cfg.seed,
            "run_id": sim.engine.run_no,
            "rate": sim.cfg.rate,
            "markets": len(sim.public.markets),
            "paused": sim.paused,
            "steps": sim.hub.steps,
            "pending": sim.hub.pending,
        }

    async def _on_book(self, cmd: SimBook) -> dict[str, Any]:
        yes, no = self.sim.truth.book(cmd.ticker)
        return {"ticker": cmd.ticker, "yes": _levels(yes), "no": _levels(no)}

    async def _on_books(self, cmd: Books) -> dict[str, Any]:
        wanted = cmd.tickers or self.sim.tickers
        return {
            t: {"yes": _levels(y), "no": _levels(n)}
            for t, (y, n) in self.sim.truth.books().items()
            if t in wanted
        }

    async def _on_dump(self, cmd: Dump) -> Any:
        return self.sim.truth.dump(cmd.path)

    async def _on_planted(self, _: Planted) -> dict[str, Any]:
        t = self.sim.truth
        return {"planted": t.planted, "complement_arbs_now": t.complement_arbs()}

    async def _on_connections(self, _: Connections) -> Any:
        return self.sim.connections()

    async def _on_sent(self, cmd: Sent) -> list[str]:
        frames = self.sim.truth.sent(cmd.conn)
        # A page from start (frames[start : start + count]), else the last tail frames.
        frames = frames[cmd.start : cmd.start + cmd.count] if cmd.start is not None else frames[-cmd.tail :]
        return [f.decode("utf-8", "replace") for f in frames]

    async def _on_sent_times(self, cmd: SentTimes) -> Any:
        return self.sim.truth.sent_times(cmd.conn)

    async def _on_gaps(self, cmd: SimGaps) -> Any:
        return self.sim.truth.gaps(cmd.conn)

    async def _on_sent_conns(self, _: SentConns) -> dict[str, Any]:
        t = self.sim.truth
        return {
            str(c): {
                "frames": len(t.sent(c)),
                "truncated": t.sent_truncated(c),
                "withheld": len(t.gaps(c)),
            }
            for c in t.connections()
        }


WORKER = SimWorker
