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
from shared.actor import Actor, UnknownCommand
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

    async def on_control(self, cmd: str, args: dict[str, Any]) -> Any:
        sim = self.sim
        if cmd in ("inject", "fault"):
            params = dict(args)
            kind = params.pop("kind", None)
            if not kind:
                raise FaultError("inject needs a 'kind'")
            return sim.faults.inject(str(kind), **params)
        if cmd == "pause":
            sim.pause()
            return {"paused": True}
        if cmd == "resume":
            sim.resume()
            return {"paused": False}
        if cmd == "step":
            sim.step(int(args.get("n", 1)))
            return {"steps": sim.hub.steps}
        if cmd == "pregenerate":
            pending = await sim.hub.prepare_blast(int(args.get("steps", 0)))
            return {"steps": sim.hub.steps, "pending": pending}
        if cmd == "info":
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
        if cmd == "book":
            yes, no = sim.truth.book(str(args["ticker"]))
            return {"ticker": args["ticker"], "yes": _levels(yes), "no": _levels(no)}
        if cmd == "books":
            wanted = args.get("tickers") or sim.tickers
            return {
                t: {"yes": _levels(y), "no": _levels(n)}
                for t, (y, n) in sim.truth.books().items()
                if t in wanted
            }
        if cmd == "dump":
            return sim.truth.dump(args.get("path"))
        if cmd == "planted":
            return {"planted": sim.truth.planted, "complement_arbs_now": sim.truth.complement_arbs()}
        if cmd == "connections":
            return sim.connections()
        if cmd == "sent":
            frames = sim.truth.sent(int(args["conn"]))
            if "start" in args:  # a page: frames[start : start + count]
                start = int(args["start"])
                frames = frames[start : start + int(args.get("count", 10_000))]
            else:
                frames = frames[-int(args.get("tail", 100)) :]
            return [f.decode("utf-8", "replace") for f in frames]
        if cmd == "sent_times":
            return sim.truth.sent_times(int(args["conn"]))
        if cmd == "gaps":
            return sim.truth.gaps(int(args["conn"]))
        if cmd == "sent_conns":
            t = sim.truth
            return {
                str(c): {
                    "frames": len(t.sent(c)),
                    "truncated": t.sent_truncated(c),
                    "withheld": len(t.gaps(c)),
                }
                for c in t.connections()
            }
        raise UnknownCommand(cmd)


WORKER = SimWorker
