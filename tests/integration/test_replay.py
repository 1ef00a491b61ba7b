"""Record a session with the simulator, replay it with ``kxfeed replay``, and point a fresh kxfeed
at the replay: its connector, orderbook and writer rebuild exactly what the first run recorded.

Run 1: bus, sim, connector, writer (the connector journals everything it publishes, the writer
stores it). Run 2, in a fresh data dir: ``kxfeed replay --journal <run 1's> --speed max`` serves
it on the simulator's port (reported in run 2's data dir, as the simulator reports its own),
then bus, connector, orderbook and writer as for the simulator. Compared: the books the
orderbook holds (with the books rebuilt from run 1's journal and with the simulator's truth),
each market's deltas and trades as run 2's connector journaled them (the same, in the same
order, with the recorded exchange times), and what run 2's writer stored (each market's
stored book and its trades) with what run 1's stored.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from services.exchange_sim.replay_record import Skipped, merged
from shared.config import Config
from shared.control import request
from shared.messages import BookDelta, BookSnapshot, Trade
from shared.store.engine import make_engine
from shared.store.queries import latest, stored_trade_ids
from tests.support.config import make_config, reported_port, write_config
from tests.support.control import stats
from tests.support.procs import spawn, stop, stop_all, wait_until

pytestmark = pytest.mark.slow

Books = dict[str, tuple[dict[int, int], dict[int, int]]]


def journal_view(
    journal: Path, since: int = 0
) -> tuple[Books, dict[str, list[tuple[Any, ...]]], dict[str, list[str]]]:
    """Final books, each market's deltas (side, price, delta, exchange ms) and trade ids
    (those received from ``since`` on)."""
    books: Books = {}
    deltas: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    trades: dict[str, list[str]] = defaultdict(list)
    dirs = [d for d in journal.iterdir() if d.is_dir()] if journal.is_dir() else []
    for m in merged(dirs, Skipped()):
        if isinstance(m, BookSnapshot) and m.source == "ws":
            books[m.ticker] = (dict(m.yes), dict(m.no))
        elif isinstance(m, BookDelta):
            side = books[m.ticker][0 if m.side == "yes" else 1]
            side[m.price] = side.get(m.price, 0) + m.delta
            if not side[m.price]:
                del side[m.price]
            if m.ts_recv >= since:
                deltas[m.ticker].append((m.side, m.price, m.delta, m.ts_exch))
        elif isinstance(m, Trade) and m.source == "ws" and m.ts_recv >= since:
            trades[m.ticker].append(m.trade_id)
    return books, deltas, trades


def stored(cfg: Config, tickers: list[str], trade_ids: list[str]) -> tuple[dict[str, Any], set[str]]:
    async def read() -> tuple[dict[str, Any], set[str]]:
        engine = make_engine(cfg.db)
        try:
            tops = {}
            for t in tickers:
                got = await latest(engine, t)
                tops[t] = [
                    (x.yes_bid, x.yes_bid_size, x.yes_ask, x.yes_ask_size)
                    for x in got.tops
                    if x.source == "book"
                ]
            return tops, await stored_trade_ids(engine, trade_ids)
        finally:
            await engine.dispose()

    return asyncio.run(read())


def books_match(cfg: Config, books: Books, tickers: list[str]) -> bool:
    """Whether the orderbook worker holds exactly these books."""
    ob = stats(cfg.orderbook.control)
    if not ob or ob.get("valid", 0) < len(tickers):
        return False
    for t in tickers:
        got = request(cfg.orderbook.control, "book", {"ticker": t, "depth": 0})
        if dict(map(tuple, got["yes"])) != books[t][0] or dict(map(tuple, got["no"])) != books[t][1]:
            return False
    return True


class Run:
    def __init__(self, tmp: Path, **sections: dict[str, Any]) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        self.cfg = make_config(tmp, **sections)
        self.path = write_config(self.cfg, tmp / "kxfeed.toml")
        self.procs: list[subprocess.Popen[bytes]] = []

    def worker(self, name: str) -> subprocess.Popen[bytes]:
        p = spawn("worker", name, "--config", str(self.path))
        self.procs.append(p)
        return p

    def close(self) -> None:
        stop_all(reversed(self.procs))
        self.procs.clear()


def test_kxfeed_pointed_at_the_replay_rebuilds_the_recorded_books_deltas_and_trades(tmp_path: Path) -> None:
    one = Run(tmp_path / "rec", sim={"markets": 8, "rate": 100.0, "lifecycle_every": 0})
    two = Run(tmp_path / "replay")
    three = Run(tmp_path / "window")
    try:
        one.worker("bus")
        one.worker("sim")
        assert wait_until(lambda: stats(one.cfg.sim.control).get("ready"), 30), "sim not ready"
        one.worker("writer")
        assert wait_until(lambda: stats(one.cfg.writer.control).get("ready"), 60), "writer not ready"
        one.worker("connector")
        assert wait_until(lambda: stats(one.cfg.connector.control).get("frames", 0) > 1500, 60), stats(
            one.cfg.connector.control
        )
        request(one.cfg.sim.control, "pause")
        time.sleep(0.5)  # what is in flight lands in the journal
        truth = request(one.cfg.sim.control, "books")
        one.close()

        books, deltas, trades = journal_view(Path(one.cfg.journal.dir))
        tickers = sorted(books)
        assert len(tickers) == 8 and sum(map(len, deltas.values())) > 500
        for t in tickers:  # the recording is the simulator's truth
            assert sorted(books[t][0].items()) == sorted(map(tuple, truth[t]["yes"])), t
        all_trades = [i for ids in trades.values() for i in ids]
        tops_one, ids_one = stored(one.cfg, tickers, all_trades)
        assert all(tops_one[t] for t in tickers) and ids_one == set(all_trades) and all_trades, tops_one

        replay = spawn(
            "replay",
            "--config",
            str(two.path),
            "--journal",
            str(one.cfg.journal.dir),
            "--speed",
            "max",
            stdout=subprocess.PIPE,
        )
        two.procs.append(replay)
        reported_port(two.cfg, "sim", "http", timeout=60)
        for name in ("bus", "writer", "orderbook", "connector"):
            two.worker(name)
        assert wait_until(lambda: stats(two.cfg.writer.control).get("ready"), 60), "writer not ready"

        assert wait_until(lambda: books_match(two.cfg, books, tickers), 60, 0.1), "books never matched"

        def stored_match() -> bool:
            tops, ids = stored(two.cfg, tickers, all_trades)
            return tops == tops_one and ids == set(all_trades)

        assert wait_until(stored_match, 60, 0.2), (stored(two.cfg, tickers, all_trades)[0], tops_one)
        assert stop(replay) == 0
        two.close()

        _, deltas_two, trades_two = journal_view(Path(two.cfg.journal.dir))
        for t in tickers:
            assert deltas_two[t] == deltas[t], t
            assert trades_two[t] == trades[t], t

        # A window from the middle, some markets, at 10x: the books as they stood at --since,
        # then the deltas and trades from there on.
        stamps = sorted(m.ts_recv for m in merged([Path(one.cfg.journal.dir) / "connector"], Skipped()))
        since = stamps[len(stamps) // 2] // 1_000_000 * 1_000_000  # --since takes ms
        some = tickers[:3]
        _, deltas_since, trades_since = journal_view(Path(one.cfg.journal.dir), since)
        window = spawn(
            "replay",
            "--config",
            str(three.path),
            "--journal",
            str(one.cfg.journal.dir),
            "--since",
            str(since // 1_000_000),
            "--tickers",
            ",".join(some),
            "--speed",
            "10",
        )
        three.procs.append(window)
        reported_port(three.cfg, "sim", "http", timeout=60)
        for name in ("bus", "orderbook", "connector"):
            three.worker(name)

        def journaled() -> tuple[Any, Any]:
            _, d, tr = journal_view(Path(three.cfg.journal.dir))
            return {t: d[t] for t in some}, {t: tr[t] for t in some}

        # Everything of the window has reached the connector once its journal holds it ...
        want = ({t: deltas_since[t] for t in some}, {t: trades_since[t] for t in some})
        assert wait_until(lambda: journaled() == want, 90, 0.1), (journaled(), want)
        # ... and the orderbook ends on the recorded books.
        assert wait_until(lambda: books_match(three.cfg, books, some), 60, 0.1), (
            "windowed books never matched"
        )
        assert stop(window) == 0
        three.close()
        deltas_three, trades_three = journaled()
        assert all(deltas_three[t] for t in some)
        for t in some:
            assert deltas_three[t] == deltas_since[t], t
            assert trades_three[t] == trades_since[t], t
    finally:
        one.close()
        two.close()
        three.close()
