"""The arb worker as a real process on a real bus, fed by this test as the connector and the
orderbook would feed it, with odds published as ``Odds`` messages on ``odds.`` (the bus
source; a subscriber of every topic decodes them like any message) or read from a file: a
signal with the right size; none on stale odds or an INVALID book; signals journaled.

Game: KXNBAGAME-26FEB04MEMSAC. Books quote Sacramento -150 / Memphis +150 (fair 0.60 / 0.40).
Sacramento's YES asks 0.52 x 10, 0.55 x 20, 0.58 x 30: after fees only the first two clear
$0.01 a contract, so the signal is 30 contracts at up to $0.55.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from shared.bus import Publisher, Subscriber
from shared.config import Config
from shared.control import ControlError, request
from shared.journal import read
from shared.messages import (
    BATCH_DECODER,
    BookOdds,
    BookState,
    Depth,
    Heartbeat,
    MarketMeta,
    Odds,
    OddsPrice,
    Signal,
    TopOfBook,
)
from tests.support.config import make_config, write_config
from tests.support.messages import game_meta
from tests.support.odds import sac_mem_event
from tests.support.procs import spawn, stop_all, wait_until

EVENT = "KXNBAGAME-26FEB04MEMSAC"
SAC, MEM = f"{EVENT}-SAC", f"{EVENT}-MEM"
SAC_NO_BIDS = [(4800, 1000), (4500, 2000), (4200, 3000)]
SAC_YES_BIDS = [(5000, 1000)]


def odds(updated_ms: int) -> bytes:
    # The game is "tonight": whatever today is, the ticker date must agree with commence_time.
    return json.dumps(sac_mem_event("nba-mem-sac", updated_ms)).encode()


def odds_message(updated_ms: int) -> Odds:
    """The same event as :func:`odds`, as a bus message."""
    prices = [OddsPrice("Sacramento Kings", -150), OddsPrice("Memphis Grizzlies", 150)]
    return Odds(
        event_id="nba-mem-sac",
        sport_key="basketball_nba",
        commence_ms=int(dt.datetime(2026, 2, 5, 0, 10, tzinfo=dt.UTC).timestamp() * 1000),
        home_team="Sacramento Kings",
        away_team="Memphis Grizzlies",
        books=[BookOdds(key, updated_ms, prices) for key in ("draftkings", "fanduel")],
        ts_recv=time.time_ns(),
    )


def meta(ticker: str, name: str) -> MarketMeta:
    return game_meta(EVENT, ticker, name, "Memphis at Sacramento Winner?", ts_recv=time.time_ns())


def top(ticker: str, yes: list[tuple[int, int]], no: list[tuple[int, int]], valid: bool = True) -> TopOfBook:
    return TopOfBook(
        ticker=ticker,
        xseq=1,
        valid=valid,
        yes_bid=yes[0][0] if yes and valid else None,
        yes_bid_size=yes[0][1] if yes and valid else 0,
        yes_ask=10_000 - no[0][0] if no and valid else None,
        yes_ask_size=no[0][1] if no and valid else 0,
        no_bid=no[0][0] if no and valid else None,
        no_ask=10_000 - yes[0][0] if yes and valid else None,
        mid_x2=None,
        spread=None,
        ts_recv=time.time_ns(),
    )


class Feed:
    """The bus around one arb process; this test plays connector, orderbook and odds feed."""

    def __init__(self, tmp: Path, **arb: Any) -> None:
        self.cfg: Config = make_config(
            tmp,
            arb={"discover": False, "seed_books": False, "odds_poll_s": 0.2, "min_books": 2, **arb},
        )
        path = write_config(self.cfg, tmp / "kx.toml")
        self.procs = [spawn("worker", name, "--config", str(path)) for name in ("bus", "arb")]
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.pub = Publisher(self.ctx, self.cfg.bus.xsub, "orderbook")
        self.signals = Subscriber(self.ctx, self.cfg.bus.xpub, ["signal."])
        self.odds_pub = Publisher(self.ctx, self.cfg.bus.xsub, "odds-feed")
        assert self.pub.wait_for_subscriber_sync(f"tob.{SAC}", 30), "arb never subscribed"
        # The test's own signal subscription must have reached the proxy too: a signal the arb
        # publishes before that is dropped, and an opportunity is signalled once.
        assert self.odds_pub.wait_for_subscriber_sync(f"signal.{SAC}", 10), "signal tap never joined"
        # Only now: its subscription to every topic would satisfy the wait above for the arb's.
        self.everything = Subscriber(self.ctx, self.cfg.bus.xpub, [""])
        # A topic only the catch-all matches: once it is seen, nothing sent later can miss it.
        assert self.odds_pub.wait_for_subscriber_sync("zz.catch-all-probe", 10), "catch-all never joined"
        self.received: list[Signal] = []

    def send(self, *msgs: Any) -> None:
        self.pub.publish_many(msgs)

    def send_odds(self, msg: Odds) -> None:
        assert self.odds_pub.wait_for_subscriber_sync(msg.topic(), 10), "nobody subscribed to odds"
        self.odds_pub.publish(msg)

    def collect(self, quiet: float = 0.5) -> list[Signal]:
        new: list[Signal] = []
        while batch := self.signals.recv_blocking(quiet):
            new.extend(m for m in batch if isinstance(m, Signal))
        self.received.extend(new)
        return new

    def fair(self) -> dict[str, Any]:
        out: dict[str, Any] = request(self.cfg.arb.control, "fair", {"ticker": SAC})
        return out

    def close(self) -> None:
        codes = stop_all(reversed(self.procs))
        self.signals.close()
        self.everything.close()
        self.odds_pub.close(0)
        self.pub.close(0)
        self.ctx.destroy(0)
        assert codes == [0, 0]


@pytest.fixture
def feed(tmp_path: Path) -> Iterator[Feed]:
    f = Feed(tmp_path, odds_source="bus")
    yield f
    f.close()


def books(f: Feed, no_bids: list[tuple[int, int]]) -> None:
    # Depth first: the top that follows makes the ladder whole whichever batch each lands in.
    f.send(
        Depth(ticker=SAC, xseq=1, valid=True, yes=SAC_YES_BIDS, no=no_bids, ts_recv=time.time_ns()),
        top(SAC, SAC_YES_BIDS, no_bids),
    )


def test_bus_odds_signal_then_stale_odds_and_invalid_books_stop_it(feed: Feed, tmp_path: Path) -> None:
    f = feed
    f.send(meta(SAC, "Sacramento Kings"), meta(MEM, "Memphis Grizzlies"))
    f.send(top(MEM, [(3800, 1000)], [(5000, 1000)]))
    books(f, SAC_NO_BIDS)
    f.send_odds(odds_message(int(time.time() * 1000)))
    assert wait_until(lambda: bool(f.collect(0.2)), 10), f.fair()
    (sig,) = f.received
    assert (sig.strategy, sig.ticker, sig.side, sig.price, sig.size, sig.fair_ppm) == (
        "sportsbook",
        SAC,
        "yes",
        5500,
        3000,
        600_000,
    )
    detail = json.loads(sig.detail)
    assert detail["books"] == ["draftkings", "fanduel"] and detail["method"] == "multiplicative"
    assert detail["fees_total"] == 530_000 and detail["latency_us"] >= 0

    # Odds older than max_odds_age: the fair value goes, a better book gets no signal.
    f.send_odds(odds_message(int(time.time() * 1000) - 400_000))
    assert wait_until(lambda: f.fair()["why"] == "stale_odds", 10), f.fair()
    books(f, [(4800, 2000), *SAC_NO_BIDS[1:]])
    assert f.collect() == []

    # Fresh odds again: the opportunity on offer is signalled.
    f.send_odds(odds_message(int(time.time() * 1000)))
    assert wait_until(lambda: bool(f.collect(0.2)), 10)
    assert f.received[-1].size == 4000

    # INVALID: nothing, even for a better depth; a VALID top brings it back.
    f.send(BookState(ticker=SAC, valid=False, reason="gap", ts_recv=time.time_ns()))
    f.send(Depth(ticker=SAC, xseq=2, valid=True, yes=SAC_YES_BIDS, no=[(4800, 5000)], ts_recv=time.time_ns()))
    assert f.collect() == []
    books(f, [(4800, 5000), *SAC_NO_BIDS[1:]])
    assert wait_until(lambda: bool(f.collect(0.2)), 10)
    assert f.received[-1].size == 7000

    # The orderbook restarts (a new epoch in its heartbeats): no book is fresh until heard of again.
    f.send(Heartbeat(worker="orderbook", pid=1, uptime_ms=1, ready=True))
    reborn = Publisher(f.ctx, f.cfg.bus.xsub, "orderbook", epoch=f.pub.epoch + 1)
    try:
        assert reborn.wait_for_subscriber_sync("hb.orderbook", 10)
        time.sleep(0.3)
        reborn.publish(Heartbeat(worker="orderbook", pid=2, uptime_ms=1, ready=True))
        assert wait_until(lambda: request(f.cfg.arb.control, "stats")["books_fresh"] == 0, 10)
    finally:
        reborn.close(0)
    books(f, [(4800, 5000), *SAC_NO_BIDS[1:]])
    assert wait_until(lambda: request(f.cfg.arb.control, "stats")["books_fresh"] == 1, 10)

    # The refreshed book may change what is on offer and so signal once more: take it too.
    f.collect(1.0)
    # Durable: every signal is in the arb's journal before it is on the bus.
    journaled = [
        m for rec in read(Path(f.cfg.journal.dir) / "arb") for m in BATCH_DECODER.decode(rec.payload)
    ]
    assert [m.seq for m in journaled if isinstance(m, Signal)] == [s.seq for s in f.received]
    assert request(f.cfg.arb.control, "stats")["signals"] == len(f.received) >= 3

    # The odds are bus messages: a subscriber of every topic decodes them, nothing undecodable.
    seen: list[Any] = []
    while batch := f.everything.recv_blocking(0.3):
        seen.extend(batch)
    assert sum(isinstance(m, Odds) for m in seen) == 3
    assert [m.topic() for m in seen if isinstance(m, Odds)] == ["odds.basketball_nba"] * 3
    assert f.everything.bad_payloads == 0


def test_file_odds_live_cli_and_control_queries(tmp_path: Path) -> None:
    path = tmp_path / "odds.json"
    path.write_bytes(odds(int(time.time() * 1000)))
    f = Feed(tmp_path, odds_source="file", odds_path=str(path))
    cli = spawn(
        "signals", "--live", "--count", "1", "--timeout", "20", "--config", str(tmp_path / "kx.toml"),
        stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        f.send(meta(SAC, "Sacramento Kings"), meta(MEM, "Memphis Grizzlies"))
        f.send(top(MEM, [(3800, 1000)], [(5000, 1000)]))
        books(f, SAC_NO_BIDS)
        assert wait_until(lambda: bool(f.collect(0.2)), 10), f.fair()
        assert [(s.ticker, s.size) for s in f.received] == [(SAC, 3000)]
        assert f.fair()["books"] == ["draftkings", "fanduel"]
        assert request(f.cfg.arb.control, "unmatched") == []
        with pytest.raises(ControlError, match="not a watched sports market"):
            request(f.cfg.arb.control, "fair", {"ticker": "KXFEDDECISION-26JAN-H0"})
        ledger = request(f.cfg.arb.control, "ledger")
        assert ledger["signals"] == 1 and ledger["day_micro"] == 16_200_000 + 530_000

        # `kxfeed signals --live` (subscribed some time in the last seconds) prints the next one.
        deadline = time.monotonic() + 20
        extra = 0
        while cli.poll() is None and time.monotonic() < deadline:
            extra += 100
            books(f, [(4800, 1000 + extra), *SAC_NO_BIDS[1:]])
            time.sleep(0.3)
        out, _ = cli.communicate(timeout=10)
        (line,) = out.decode().splitlines()
        assert "sportsbook" in line and SAC in line and " yes " in line and "@ $0.5500" in line
        assert "multiplicative median of 2 books" in line
    finally:
        if cli.poll() is None:
            cli.kill()
        f.close()
