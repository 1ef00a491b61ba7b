"""The arb's book seeding against a real control socket playing the orderbook: it asks ``book``
only for books the orderbook lists (``hashes``), so a start before any book exists makes one
quiet request and no failed ones; after a reset it asks again; an orderbook that does not
answer leaves every book to ask for next round."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import zmq
import zmq.asyncio
from prometheus_client import REGISTRY

from services.arb.candidate import Candidate
from services.arb.detector import Detector
from services.arb.leagues import load_leagues
from services.arb.seeding import Seeder
from shared.config import ArbConfig
from shared.control import ENCODER, REQUEST_DECODER, ControlReply
from shared.log import BurstLog, get_logger
from shared.messages import MarketMeta
from tests.support.config import ipc_endpoint
from tests.support.messages import game_meta

EVENT = "KXNBAGAME-26FEB04MEMSAC"
SAC, MEM = f"{EVENT}-SAC", f"{EVENT}-MEM"


def meta(ticker: str, name: str) -> MarketMeta:
    return game_meta(EVENT, ticker, name, "Memphis at Sacramento Winner?")


class FakeOrderbook:
    """Answers ``hashes`` and ``book`` like the orderbook worker, for the books in ``held``."""

    def __init__(self, endpoint: str) -> None:
        self.held: dict[str, dict[str, Any]] = {}
        self.asked: list[tuple[str, Any]] = []
        self.sock = zmq.asyncio.Context.instance().socket(zmq.REP)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(endpoint)

    async def serve(self) -> None:
        while True:
            req = REQUEST_DECODER.decode(await self.sock.recv())
            self.asked.append((req.cmd, req.args.get("tickers") or req.args.get("ticker")))
            if req.cmd == "hashes":
                wanted = req.args.get("tickers") or list(self.held)
                reply = ControlReply(ok=True, result={t: {"valid": True} for t in wanted if t in self.held})
            elif req.cmd == "book" and req.args["ticker"] in self.held:
                reply = ControlReply(ok=True, result=self.held[req.args["ticker"]])
            else:
                reply = ControlReply(ok=False, error=f"no book for {req.args.get('ticker')!r}")
            await self.sock.send(ENCODER.encode(reply))


def seeds(result: str) -> float:
    return REGISTRY.get_sample_value("kxfeed_arb_book_seeds_total", {"result": result}) or 0.0


def test_seeding_asks_only_for_books_the_orderbook_holds(tmp_path: Path) -> None:
    det = Detector(msgspec.convert({"min_books": 1}, ArbConfig), load_leagues())
    det.handle([meta(SAC, "Sacramento Kings"), meta(MEM, "Memphis Grizzlies")], 0, 0)
    emitted: list[list[Candidate]] = []
    endpoint = ipc_endpoint(tmp_path, "orderbook")
    seeder = Seeder(endpoint, det, emitted.append, BurstLog(get_logger("test.seeding")))
    clock = lambda: 1_000_000_000  # noqa: E731 - fixed ns: the core takes now, never reads a clock

    async def run() -> None:
        # The orderbook not up yet: no answer, nothing settled, every book asked for next round.
        no_answer = seeds("no_answer")
        await seeder.round(clock)
        assert seeder.todo() == [MEM, SAC]
        assert seeds("no_answer") == no_answer + 1

        ob = FakeOrderbook(endpoint)
        server = asyncio.create_task(ob.serve())
        try:
            # Up, but no book yet (kxfeed up: the connector starts last): one list request.
            not_held, no_book = seeds("not_held"), seeds("no_book")
            await seeder.round(clock)
            assert ob.asked == [("hashes", [MEM, SAC])]
            assert seeder.todo() == []
            assert (seeds("not_held"), seeds("no_book")) == (not_held + 2, no_book)
            await seeder.round(clock)
            assert ob.asked == [("hashes", [MEM, SAC])], "nothing more to ask"

            # Every book marked not fresh: asked again; only the book it holds is fetched.
            ob.held[SAC] = {
                "ticker": SAC,
                "valid": True,
                "xseq": 7,
                "yes": [[5000, 100]],
                "no": [[4800, 200]],
            }
            seeder.reset()
            await seeder.round(clock)
            assert ob.asked[1:] == [("hashes", [MEM, SAC]), ("book", SAC)]
            assert det.books[SAC].known and det.books[SAC].xseq == 7
            assert MEM not in det.books
            assert seeder.todo() == []
            assert seeds("no_book") == no_book
        finally:
            server.cancel()
            ob.sock.close(0)

    asyncio.run(run())
