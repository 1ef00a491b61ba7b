"""The arb worker against the simulator, every piece a real process: bus, sim, writer,
orderbook, arb, connector. The simulator plants mispricings and logs them (``planted``);
with the sim paused, the test computes - from the sim's true books and its Odds API
answer, with its own arithmetic - every opportunity there is, and checks that the arb
found each planted edge and complement with the right price and size, that each edge's
fair value is the one the test computes from the very odds snapshot the signal names
(the sim's odds move every minute; a signal is not re-sent when only its fair value
moves, so the test records every snapshot), that no game the sim priced fairly got any
signal, that the writer stored every signal, and that every game was matched
(``kxfeed arb unmatched``)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import zmq

from services.exchange_sim.teams import LEAGUE_BY_SERIES
from shared.bus import Subscriber
from shared.config import Config
from shared.control import request
from shared.messages import Signal
from tests.support.config import make_config, reported_port, write_config
from tests.support.control import stats
from tests.support.procs import kxfeed_cmd, spawn, stop_all, wait_until

MIN_EDGE = 300  # $0.03 a contract
RATE = Fraction(7, 100)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


# ---- the test's own arithmetic ---------------------------------------------------------------


def implied(american: int) -> Fraction:
    return Fraction(100, american + 100) if american > 0 else Fraction(-american, -american + 100)


def fair_ppm(event: dict[str, Any], name: str, books: list[str] | None = None) -> int:
    """Median over books (``books`` only, if given) of the proportionally de-vigged
    probability of ``name``."""
    values = []
    for bm in event["bookmakers"]:
        if books is not None and bm["key"] not in books:
            continue
        (h2h,) = [m for m in bm["markets"] if m["key"] == "h2h"]
        q = {o["name"]: implied(int(o["price"])) for o in h2h["outcomes"]}
        values.append(round(q[name] / sum(q.values()) * 1_000_000))
    values.sort()
    return values[len(values) // 2]


def unit_fee(price: int) -> Fraction:
    p = Fraction(price, 10_000)
    return RATE * p * (1 - p)


def asks(bids: list[list[int]]) -> list[tuple[int, int]]:
    """Bids of the other side -> asks, cheapest first."""
    return sorted((10_000 - p, s) for p, s in bids)


def edge_walk(value_ppm: int, ladder: list[tuple[int, int]]) -> tuple[int, int]:
    """(limit price, size) worth taking: levels whose edge after the fee is >= MIN_EDGE."""
    value = Fraction(value_ppm, 1_000_000)
    size, limit = 0, 0
    for price, qty in ladder:
        if value - Fraction(price, 10_000) - unit_fee(price) < Fraction(MIN_EDGE, 10_000):
            break
        size, limit = size + qty, price
    return limit, size


def order_fee_micro(fills: list[tuple[int, int]]) -> int:
    """Kalshi: fee per fill up to $0.0001, balance floored to the cent, cents refunded."""
    total = acc = 0
    for price, count in fills:
        fee = -(-7 * count * price * (10_000 - price) // 10_000_000_000) * 100  # micro, up to $0.0001
        change = -(price * count) - fee
        rounding = change - (change // 10_000) * 10_000
        acc += rounding
        rebate = acc // 10_000 * 10_000
        acc -= rebate
        total += fee + rounding - rebate
    return total


def complement_walk(ladders: list[list[tuple[int, int]]]) -> tuple[int, int]:
    """(sum of the legs' limit prices, bundles) of YES on every outcome below $1 after fees."""
    if not all(ladders):
        return 0, 0  # a leg with nothing on offer: no bundle to buy
    idx = [0] * len(ladders)
    left = [lad[0][1] for lad in ladders]
    fills: list[list[tuple[int, int]]] = [[] for _ in ladders]
    bundles = 0
    while all(i < len(lad) for i, lad in zip(idx, ladders, strict=True)):
        prices = [lad[i][0] for i, lad in zip(idx, ladders, strict=True)]
        if 1 - sum(Fraction(p, 10_000) + unit_fee(p) for p in prices) < Fraction(1, 10_000):
            break
        step = min(left)
        for k, p in enumerate(prices):
            fills[k].append((p, step))
            left[k] -= step
            if left[k] == 0:
                idx[k] += 1
                if idx[k] < len(ladders[k]):
                    left[k] = ladders[k][idx[k]][1]
        bundles += step
    if not bundles:
        return 0, 0
    spent = sum(sum(p * s for p, s in f) + order_fee_micro(f) for f in fills)
    if (bundles * 1_000_000 // 100 - spent) * 100 // bundles < 100:  # below $0.0001 a bundle
        return 0, 0
    return sum(f[-1][0] for f in fills), bundles


# ---- the stack -------------------------------------------------------------------------------


class OddsRecorder:
    """Every odds snapshot the sim serves while the test runs, by its ``last_update`` (ms).

    The sim's odds change once a minute, so polling a few times a second sees each one."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.snapshots: dict[int, dict[str, dict[str, Any]]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                events = get_json(self.url)
            except OSError:
                events = []  # the sim is starting or stopping
            for e in events:
                for bm in e["bookmakers"]:
                    at = int(
                        datetime.fromisoformat(bm["last_update"].replace("Z", "+00:00")).timestamp() * 1000
                    )
                    self.snapshots.setdefault(at, {})[e["id"]] = e
            self._stop.wait(0.25)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


class Stack:
    def __init__(self, tmp: Path) -> None:
        big = 10**9
        self.cfg: Config = make_config(
            tmp,
            sim={
                "markets": 40,
                "rate": 60.0,
                "lifecycle_every": 0,
                "planted_edge": 1500,
                "planted_edge_every": 3,
                "planted_arb_every": 2,
            },
            orderbook={"depth_levels": 30, "depth_interval": 0.2},
            arb={
                "min_edge": MIN_EDGE,
                # Odds are fetched once per sport as its first game appears, then only on the
                # test's `refresh`: what the arb holds is then exactly what the test fetched.
                "odds_poll_s": 3600.0,
                "bankroll_usd": big,
                "max_market_exposure_usd": big,
                "max_sport_exposure_usd": big,
                "max_daily_exposure_usd": big,
                "max_signals_per_minute": 1_000_000,
            },
        )
        self.path = write_config(self.cfg, tmp / "kxfeed.toml")
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs = tmp
        self.start("bus")
        self.start("sim")
        assert wait_until(lambda: stats(self.cfg.sim.control).get("ready"), 30), "sim not ready"
        self.sim_port = reported_port(self.cfg, "sim", "http")
        self.odds = OddsRecorder(f"http://127.0.0.1:{self.sim_port}/v4/sports/upcoming/odds?apiKey=test")
        self.zctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.signals = Subscriber(self.zctx, self.cfg.bus.xpub, ["signal."])
        for name in ("writer", "orderbook", "arb", "connector"):
            self.start(name)

    def start(self, name: str) -> None:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        self.procs[name] = spawn("worker", name, "--config", str(self.path), stdout=log, stderr=log)

    def close(self) -> None:
        stop_all(reversed(list(self.procs.values())))
        self.signals.close()
        self.zctx.destroy(0)
        self.odds.close()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = Stack(tmp_path)
    yield s
    s.close()


@pytest.mark.slow
def test_planted_edges_found_with_the_right_size_and_fair_markets_get_nothing(stack: Stack) -> None:
    cfg = stack.cfg
    rest = f"http://127.0.0.1:{stack.sim_port}/trade-api/v2"
    odds_url = f"http://127.0.0.1:{stack.sim_port}/v4/sports/upcoming/odds?apiKey=test"
    markets = [
        m
        for m in get_json(f"{rest}/markets?limit=1000")["markets"]
        if m["event_ticker"].split("-")[0] in LEAGUE_BY_SERIES
    ]
    games: dict[str, list[dict[str, Any]]] = {}
    for m in markets:
        games.setdefault(m["event_ticker"], []).append(m)

    def arb_caught_up() -> bool:
        s = stats(cfg.arb.control)
        return (
            bool(s)
            and s["markets"] == len(markets)
            and s["matched"] == len(games)
            and (s["books_fresh"] == len(markets))
        )

    assert wait_until(arb_caught_up, 40, 0.1), stats(cfg.arb.control)
    time.sleep(2.0)  # the market moves; signals come and go

    request(cfg.sim.control, "pause")
    time.sleep(1.5)  # in-flight frames land; the orderbook's depth rounds catch up
    for _ in range(10):
        before = get_json(odds_url)
        refreshed = request(cfg.arb.control, "refresh", timeout_s=10)
        after = get_json(odds_url)
        # The sim's odds move per minute: unchanged around the refresh, the arb saw these, if
        # its fetch of every game's odds went through (a request that timed out on a loaded
        # machine backs the odds client off: its next fetch is held for a second or so).
        if before == after and refreshed["odds_events"] >= len(games):
            break
        time.sleep(1.0)
    else:
        pytest.fail(f"odds kept changing around the refresh, or the arb's fetch failed: {refreshed}")
    odds = {e["id"]: e for e in after}
    truth = request(cfg.sim.control, "books")
    time.sleep(0.5)
    received: list[Signal] = []
    while batch := stack.signals.recv_blocking(0.3):
        received.extend(m for m in batch if isinstance(m, Signal))

    planted = request(cfg.sim.control, "planted")["planted"]
    edges = {p["event_ticker"] for p in planted if p["kind"] == "edge"}
    arbs = {p["event_ticker"] for p in planted if p["kind"] == "arb"}
    assert edges and arbs, planted
    latest: dict[tuple[str, str, str], Signal] = {(s.strategy, s.ticker, s.side): s for s in received}

    earlier = 0  # edges last signalled on odds that have moved since (fair_ppm is theirs)
    # Every planted edge: the overpriced first market's NO and the underpriced second one's YES.
    # Its price and size are what the books hold now at the fair value of the odds the arb
    # holds now (the refresh's: an opportunity that changed was signalled again); its
    # fair_ppm is the one of the odds snapshot it was signalled with (the detail names it).
    for ev in edges:
        oevent = odds[hashlib.md5(ev.encode()).hexdigest()]
        by_ticker = {m["ticker"]: m for m in games[ev]}
        (p,) = [p for p in planted if p["event_ticker"] == ev]
        first = p["market_ticker"]
        second = next(t for t in by_ticker if t != first and not t.endswith("-TIE"))
        for ticker, side in ((first, "no"), (second, "yes")):
            name = by_ticker[ticker]["yes_sub_title"]
            fair = fair_ppm(oevent, name)
            now_fair = request(cfg.arb.control, "fair", {"ticker": ticker})
            assert now_fair["fair_ppm"] == fair, (
                ticker,
                fair,
                now_fair,
                oevent["bookmakers"][0]["last_update"],
            )
            book = truth[ticker]
            value = fair if side == "yes" else 1_000_000 - fair
            limit, size = edge_walk(value, asks(book["no"] if side == "yes" else book["yes"]))
            assert size >= 100, f"the sim's planted edge on {ticker} {side} should be there to find"
            sig = latest.get(("sportsbook", ticker, side))
            assert sig is not None, f"planted edge on {ticker} ({side}) not found"
            assert (sig.price, sig.size) == (limit, size), (ticker, side, sig.detail)
            detail = json.loads(sig.detail)
            used = stack.odds.snapshots[detail["odds_ms"]][oevent["id"]]
            earlier += used != oevent
            then = fair_ppm(used, name, detail["books"])
            assert sig.fair_ppm == (then if side == "yes" else 1_000_000 - then), (ticker, side, sig.detail)

    # Every planted complement arbitrage the books still hold (the sim's market makers can
    # quote one away: its margin is a few ticks).
    held = 0
    for ev in arbs:
        legs = sorted(games[ev], key=lambda m: m["ticker"].rpartition("-")[2])
        price, bundles = complement_walk([asks(truth[m["ticker"]]["no"]) for m in legs])
        sig = latest.get(("complement", ev, "yes"))
        if bundles < 100:
            continue
        held += 1
        assert sig is not None, f"planted complement arbitrage on {ev} not found"
        assert (sig.price, sig.size) == (price, bundles), sig.detail
        assert sig.legs == [m["ticker"] for m in legs]
    print(
        f"planted: {len(edges)} edges ({earlier} signals on earlier odds), {len(arbs)} complements "
        f"({held} held); {len(received)} signals"
    )
    assert held, "no planted complement left in the books to check"

    # Games the sim priced fairly: nothing, ever.
    fair_games = set(games) - edges - arbs
    assert fair_games
    wrong = [s for s in received if s.ticker in fair_games or s.ticker.rpartition("-")[0] in fair_games]
    assert wrong == [], [(s.ticker, s.side, s.detail) for s in wrong]

    # Signals are journaled and stored: the database holds every one the arb published.
    published = stats(cfg.arb.control)["signals"]
    assert published >= len(latest)

    def stored() -> int:
        out = subprocess.run(
            kxfeed_cmd("signals", "--json", "--limit", "1000000", "--config", str(stack.path)),
            capture_output=True,
            timeout=30,
        )
        return len(out.stdout.splitlines()) if out.returncode == 0 else -1

    assert wait_until(lambda: stored() == published, 20, 0.5), (stored(), published)
    rows = subprocess.run(
        kxfeed_cmd("signals", "--json", "--limit", "5", "--config", str(stack.path)),
        capture_output=True,
        check=True,
    )
    row = json.loads(rows.stdout.splitlines()[-1])
    assert {
        "strategy",
        "ticker",
        "side",
        "price",
        "size",
        "fair_ppm",
        "edge",
        "fees",
        "legs",
        "detail",
    } <= set(row)
    assert "latency_us" in json.loads(row["detail"])

    out = subprocess.run(
        kxfeed_cmd("arb", "unmatched", "--json", "--config", str(stack.path)), capture_output=True, check=True
    )
    assert json.loads(out.stdout) == []
