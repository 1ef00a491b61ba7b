"""Arb benchmark: top-of-book updates evaluated per second for 500 live games; p99 detection latency.

  .venv/bin/python bench/arb.py [--games 500] [--updates 200000] [--bus-seconds 3] [--bus-rate 20000]

500 NBA-style games (1,000 markets), each matched to a sportsbook event with two books,
a fair value, and a book with depth. The update stream is top-of-book messages on random
markets: most quote around the fair value (evaluated, no edge), 1 in 100 opens an edge
(walked through depth, sized, signalled).

- core: each update is decoded from its bus payload, applied, evaluated, and any signal
  built and encoded, one update at a time; latency is that whole path per update.
- worker: the real arb process behind a real bus proxy, fed a paced stream; latency is
  from the publisher stamping the top of book (its ts_recv) to the signal arriving back
  at the benchmark, and the worker's own figure (trigger reaching the worker -> signal
  published, the ``latency_us`` in each signal's detail). Then a burst as fast as the
  sender goes, to see how fast the worker drains it.

Targets (issue 9): >= 50,000 updates/s; p99 detection latency < 5 ms.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.arb.detector import Detector
from services.arb.leagues import load_leagues
from services.arb.odds import parse_events
from shared.bus import Publisher, Subscriber
from shared.config import ArbConfig
from shared.messages import BATCH_DECODER, BATCH_ENCODER, Depth, MarketMeta, Message, Signal, TopOfBook
from tests.support.config import make_config, write_config
from tests.support.control import stats as control_stats
from tests.support.messages import game_meta
from tests.support.procs import spawn, stop_all, wait_until

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
BIG = 10**9
EDGE_EVERY = 100
TARGET_RATE = 50_000
TARGET_P99_MS = 5.0


def american(p: float) -> int:
    return -round(100 * p / (1 - p)) if p >= 0.5 else round(100 * (1 - p) / p)


class Games:
    """``n`` games with metadata, sportsbook odds and a fair value per market."""

    def __init__(self, n: int, rng: random.Random) -> None:
        teams = sorted(load_leagues()["KXNBAGAME"].teams.items())
        self.metas: list[MarketMeta] = []
        self.odds: list[dict[str, Any]] = []
        self.fair: dict[str, int] = {}
        used: set[str] = set()
        day0 = dt.date.today()
        while len(self.odds) < n:
            day = day0 + dt.timedelta(days=rng.randrange(0, 60))
            (ac, away), (hc, home) = rng.sample(teams, 2)
            event = f"KXNBAGAME-{day.year % 100:02d}{MONTHS[day.month - 1]}{day.day:02d}{ac}{hc}"
            if event in used:
                continue
            used.add(event)
            p_home = rng.randrange(30, 71) / 100
            for code, name in ((ac, away), (hc, home)):
                self.metas.append(game_meta(event, f"{event}-{code}", name, f"{away} at {home} Winner?"))
            stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            books = []
            for key, vig in (("draftkings", 1.045), ("fanduel", 1.04)):
                outcomes = [
                    {"name": home, "price": american(min(0.97, p_home * vig))},
                    {"name": away, "price": american(min(0.97, (1 - p_home) * vig))},
                ]
                books.append(
                    {"key": key, "last_update": stamp, "markets": [{"key": "h2h", "outcomes": outcomes}]}
                )
            self.odds.append(
                {
                    "id": event,
                    "sport_key": "basketball_nba",
                    "commence_time": f"{day.isoformat()}T23:00:00Z",
                    "home_team": home,
                    "away_team": away,
                    "bookmakers": books,
                }
            )

    def learn_fairs(self, det: Detector) -> None:
        for m in self.metas:
            fair = det.catalog.markets[m.ticker].fair
            assert fair is not None, f"{m.ticker} did not get a fair value"
            self.fair[m.ticker] = fair


def quote(ticker: str, fair_ppm: int, rng: random.Random, edge: bool) -> tuple[TopOfBook, Depth]:
    """A top of book around the fair value; with ``edge``, a YES ask 5 cents under it."""
    fair = fair_ppm // 100 // 100 * 100  # price units, on the cent grid
    yes_bid = max(100, fair - 100 * rng.randint(2, 4))
    yes_ask = fair - 500 if edge else min(9_900, fair + 100 * rng.randint(2, 4))
    no_bid = 10_000 - yes_ask
    size = rng.randint(1, 300) * 100
    t = TopOfBook(
        ticker=ticker,
        xseq=1,
        valid=True,
        yes_bid=yes_bid,
        yes_bid_size=size,
        yes_ask=yes_ask,
        yes_ask_size=size,
        no_bid=no_bid,
        no_ask=10_000 - yes_bid,
        mid_x2=yes_bid + yes_ask,
        spread=yes_ask - yes_bid,
    )
    d = Depth(
        ticker=ticker,
        xseq=1,
        valid=True,
        yes=[(yes_bid - 100 * k, 5_000) for k in range(5) if yes_bid - 100 * k > 0],
        no=[(no_bid - 100 * k, 5_000) for k in range(5) if no_bid - 100 * k > 0],
    )
    return t, d


def config(**kw: Any) -> dict[str, Any]:
    return {
        "min_edge": 100,
        "bankroll_usd": BIG,
        "max_market_exposure_usd": BIG,
        "max_sport_exposure_usd": BIG,
        "max_daily_exposure_usd": BIG,
        "max_signals_per_minute": BIG,
        **kw,
    }


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def bench_core(games: Games, n_updates: int, rng: random.Random) -> None:
    det = Detector(msgspec.convert(config(), ArbConfig), load_leagues())
    now = int(time.time() * 1000)
    det.handle(games.metas, now, 0)
    t0 = time.perf_counter()
    det.on_odds(parse_events(json.dumps(games.odds).encode(), "multiplicative"), now, 0)
    match_ms = (time.perf_counter() - t0) * 1000
    games.learn_fairs(det)
    tickers = [m.ticker for m in games.metas]
    for t in tickers:
        top, depth = quote(t, games.fair[t], rng, edge=False)
        det.handle([depth, top], now, 0)
    payloads = []
    for i in range(n_updates):
        t = rng.choice(tickers)
        top, _ = quote(t, games.fair[t], rng, edge=i % EDGE_EVERY == 0)
        payloads.append(BATCH_ENCODER.encode([top]))
    lat: list[float] = []
    signals = 0
    clock = time.perf_counter_ns
    start = clock()
    for payload in payloads:
        t_in = clock()
        msgs = BATCH_DECODER.decode(payload)
        for c in det.handle(msgs, now, t_in):
            c.detail["latency_us"] = (clock() - t_in) // 1000
            sig = c.to_signal()
            BATCH_ENCODER.encode([sig])
            signals += 1
        lat.append((clock() - t_in) / 1e6)
    elapsed = (clock() - start) / 1e9
    rate = n_updates / elapsed
    print(f"setup: {len(games.odds)} games matched and priced from one odds update in {match_ms:.0f} ms")
    print(
        f"core:   {rate:>10,.0f} updates/s  (target >= {TARGET_RATE:,}); {signals:,} signals from "
        f"{n_updates:,} updates"
    )
    print(
        f"core:   latency per update p50 {pct(lat, 0.5) * 1000:.1f} us, p99 {pct(lat, 0.99) * 1000:.1f} us, "
        f"max {max(lat):.2f} ms  (target p99 < {TARGET_P99_MS} ms)"
    )


def bench_worker(games: Games, seconds: float, rate: int, rng: random.Random) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="kxfeed-bench-arb-"))
    odds_file = tmp / "odds.json"
    odds_file.write_text(json.dumps(games.odds))
    cfg = make_config(
        tmp,
        arb=config(
            discover=False, seed_books=False, odds_source="file", odds_path=str(odds_file), odds_poll_s=0.5
        ),
    )
    path = write_config(cfg, tmp / "kx.toml")
    procs = [spawn("worker", name, "--config", str(path)) for name in ("bus", "arb")]
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    pub = Publisher(ctx, cfg.bus.xsub, "orderbook")
    sub = Subscriber(ctx, cfg.bus.xpub, ["signal."])
    try:
        assert pub.wait_for_subscriber_sync("tob.KXNBAGAME-", 30), "arb never subscribed"
        pub.publish_many(games.metas)

        def stats() -> dict[str, Any]:
            return control_stats(cfg.arb.control, timeout_s=1.0)

        assert wait_until(lambda: stats().get("matched") == len(games.odds), 30), stats()
        tickers = [m.ticker for m in games.metas]
        opening: list[Message] = []
        for t in tickers:
            top, depth = quote(t, games.fair[t], rng, edge=False)
            opening += [depth, top]
        pub.publish_many(opening)
        time.sleep(1.0)
        sub.drain(1_000_000)

        # Paced: `rate` tops a second in 1 ms slices; latency from the publisher's stamp.
        n = int(seconds * rate)
        per_slice = max(1, rate // 1000)
        across: list[float] = []  # publisher's stamp on the top -> signal published (same host clock)
        inside: list[float] = []  # top reaching the arb's event loop -> signal published
        back: list[float] = []  # publisher's stamp -> signal read here (the sender also sleeps)

        def record(msgs: list[Any]) -> None:
            now = time.time_ns()
            for m in msgs:
                if isinstance(m, Signal):
                    d = json.loads(m.detail)
                    inside.append(d["latency_us"] / 1000)
                    across.append(d["since_recv_us"] / 1000)
                    back.append(d["since_recv_us"] / 1000 + (now - m.ts_recv) / 1e6)

        # Made before the clock starts: the sender only stamps, sends and reads back.
        stream = []
        for i in range(n):
            t = rng.choice(tickers)
            stream.append(quote(t, games.fair[t], rng, edge=i % EDGE_EVERY == 0)[0])
        sent = 0
        start = time.perf_counter()
        while sent < n:
            due = start + sent / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            batch = stream[sent : sent + per_slice]
            stamp = time.time_ns()
            for top in batch:
                msgspec.structs.force_setattr(top, "ts_recv", stamp)
            pub.publish_many(batch)
            sent += len(batch)
            record(sub.drain())
        elapsed = time.perf_counter() - start
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            record(sub.recv_blocking(0.1))
        print(
            f"worker: paced {sent:,} tops in {elapsed:.2f} s ({sent / elapsed:,.0f}/s), {len(inside)} signals"
        )
        print(
            f"worker: detection latency, top published -> signal published: p50 {pct(across, 0.5):.2f} ms, "
            f"p99 {pct(across, 0.99):.2f} ms; inside the worker p50 {pct(inside, 0.5):.3f} ms, "
            f"p99 {pct(inside, 0.99):.3f} ms  (target p99 < {TARGET_P99_MS} ms)"
        )
        print(f"worker: round trip back to the sender p99 {pct(back, 0.99):.2f} ms (with its 1 ms pacing)")

        # Burst: as fast as the sender goes; a final edge marks the end of the stream.
        burst = []
        for _ in range(max(50_000, rate * 2)):
            t = rng.choice(tickers)
            burst.append(quote(t, games.fair[t], rng, edge=False)[0])
        last = tickers[0]
        marker = quote(last, games.fair[last], rng, edge=True)[0]
        msgspec.structs.force_setattr(marker, "yes_ask_size", 12_345)  # a size not seen before: new
        sub.drain(1_000_000)
        t0 = time.perf_counter()
        for i in range(0, len(burst), 1000):
            pub.publish_many(burst[i : i + 1000])
        pub.publish(marker)
        done = None
        deadline = time.monotonic() + 30
        while done is None and time.monotonic() < deadline:
            for m in sub.recv_blocking(0.05):
                if isinstance(m, Signal) and m.ticker == last:
                    done = time.perf_counter()
        assert done is not None, "the end-of-burst signal never came"
        took = done - t0
        n_burst = len(burst) + 1
        print(
            f"worker: burst of {n_burst:,} tops drained in {took:.2f} s: {n_burst / took:,.0f} updates/s "
            f"(target >= {TARGET_RATE:,}; a bus batch evaluates each market it touched once)"
        )
    finally:
        stop_all(reversed(procs))
        sub.close()
        pub.close(0)
        ctx.destroy(0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--games", type=int, default=500)
    ap.add_argument("--updates", type=int, default=200_000, help="core: updates timed")
    ap.add_argument(
        "--bus-seconds", type=float, default=3.0, help="worker: seconds of paced stream (0: skip)"
    )
    ap.add_argument("--bus-rate", type=int, default=20_000, help="worker: paced tops per second")
    ap.add_argument("--seed", type=int, default=9)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    games = Games(args.games, rng)
    print(f"{args.games} live games ({len(games.metas)} markets), 1 update in {EDGE_EVERY} opens an edge")
    bench_core(games, args.updates, rng)
    if args.bus_seconds > 0:
        bench_worker(games, args.bus_seconds, args.bus_rate, rng)


if __name__ == "__main__":
    main()
