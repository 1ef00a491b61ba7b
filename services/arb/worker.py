"""The arb worker: Kalshi sports books + sportsbook odds -> signals on ``signal.<ticker>``.

  kxfeed worker arb [--config FILE]

Inputs (bus): ``meta.``, ``tob.``, ``depth.``, ``lifecycle.`` and ``fee.`` of the watched
series only (one prefix per series: the sports filter at subscription), ``bookstate.``
whole (so a lost VALID/INVALID transition is detected) and ``hb.orderbook``. Every
message is checked against the series again. At start, and every ``rediscover_s``,
the worker also learns the sports markets over REST itself (it may start after the
connector published their metadata), and asks the orderbook worker's control socket
for the books it already holds (:mod:`.seeding`: only those the orderbook lists). A
bus drop of book news, or an orderbook that restarted or went silent, makes every
book not fresh until it is heard of again.

Odds (``[arb] odds_source``): The Odds API v4 (``ODDS_API_KEY``; the simulator serves
the same API in the embedded default and accepts any key), asked every ``odds_poll_s``
for each sport with Kalshi games being watched (at once for a sport's first game); a
JSON file or directory in that API's shape; or the bus: ``Odds`` messages on
``odds.<sport_key>`` (:class:`shared.messages.Odds`: one event, each sportsbook's h2h
line as integer American odds, times in ms). To publish your own odds, publish them
like any bus message::

    pub = Publisher(zmq.Context.instance(), config.bus.xsub, "my-odds")
    pub.publish(Odds(event_id="e1", sport_key="basketball_nba", commence_ms=...,
                     home_team="Sacramento Kings", away_team="Memphis Grizzlies",
                     books=[BookOdds("fanduel", updated_ms, [OddsPrice("Sacramento Kings", -150),
                                                            OddsPrice("Memphis Grizzlies", 130)])]))

Output: ``Signal`` (durable: journaled, stored by the writer). ``price``/``size`` are
the limit price and size to send (prices $0.0001, sizes hundredths), ``fair_ppm`` the
fair value, ``edge``/``fees`` micro-dollars per contract (per bundle for a
complement); ``detail`` (compact JSON) holds the method, books used, fills, totals,
what limited the size, and latency (``latency_us`` from the trigger reaching the
worker, ``since_recv_us`` from kxfeed receiving the exchange frame behind it).

Control: ``unmatched``, ``signals {n}``, ``fair {ticker}``, ``ledger``,
``breaker_reset``, ``refresh`` (poll odds now and re-evaluate everything).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from typing import Any

from shared.actor import Actor
from shared.bus import RecordSink
from shared.commands.base import Command
from shared.commands.breaker_reset import BreakerReset
from shared.commands.fair import Fair
from shared.commands.ledger import Ledger
from shared.commands.refresh import Refresh
from shared.commands.signals import Signals
from shared.commands.table import CommandHandler
from shared.commands.unmatched import Unmatched
from shared.config import ArbConfig
from shared.journal import open_journal
from shared.kalshi.discovery import MarketFilter, SeriesCatalog, discover
from shared.kalshi.endpoints import effective_env, resolve, sim_port
from shared.kalshi.rest import RestClient, RestError
from shared.messages import Heartbeat, Message, Odds, to_jsonable

from . import metrics as mx
from .detector import Candidate, Detector
from .leagues import load_leagues
from .odds import ParseResult, parse_events, parse_messages
from .seeding import Seeder
from .sources import PUBLIC_ODDS_API, OddsApi, OddsFiles, sleep_until

BOOK_KINDS = ("tob", "depth", "meta", "lifecycle", "fee")
_TICK_S = 1.0


class ArbWorker(Actor):
    name = "arb"

    def journal(self) -> RecordSink | None:
        # Always journaled (signals are primary data), pruned by retention like every journal.
        return open_journal(self.config, self.worker_id)

    async def setup(self) -> None:
        cfg = self.config.arb
        assert isinstance(cfg, ArbConfig)
        self.cfg = cfg
        self.leagues = {s: lg for s, lg in load_leagues(cfg.teams_dir or None).items() if s in cfg.series}
        self.detector = Detector(cfg, self.leagues)
        self.sync = mx.CounterSync(self.log)
        prefixes = [f"{k}.{s}-" for k in BOOK_KINDS for s in sorted(cfg.series)]
        prefixes += ["bookstate.", "hb.orderbook"] + (["odds."] if cfg.odds_source == "bus" else [])
        self.sub = self.subscriber(prefixes, on_drop=self._on_drop)
        self.recent: deque[dict[str, Any]] = deque(maxlen=500)
        self.published = 0
        self._last_ts = 0
        self.seeder = Seeder(self.config.orderbook.control, self.detector, self._emit, self.sync.info)
        self._ob_epoch: tuple[str, int] | None = None
        self._ob_seen = 0.0
        self._ob_timeout = max(5.0, 5 * self.config.orderbook.heartbeat_interval_s)
        self.odds_api: OddsApi | None = None
        self.odds_polls = 0
        self._trips_synced = 0
        self._polled_sports: set[str] = set()
        self._refresh_lock = asyncio.Lock()
        for reason in mx.MATCH_REASONS:
            mx.GAMES.labels(reason).set_function(
                lambda r=reason: self.detector.catalog.match_counts().get(r, 0)  # type: ignore[misc]
            )
        mx.EXPOSURE.set_function(lambda: self.detector.ledger.day_total / 1e6)
        mx.BREAKER_OPEN.set_function(
            lambda: 1.0 if self.detector.ledger.breaker_open(time.time_ns() // 1_000_000) else 0.0
        )
        self._setup_odds()
        self.ready = True
        self.log.info(
            "arb configured",
            extra={
                "ctx": {
                    "series": len(cfg.series),
                    "team_tables": len({lg.name for lg in self.leagues.values()}),
                    "odds_source": cfg.odds_source,
                    "devig": cfg.devig,
                }
            },
        )

    def _setup_odds(self) -> None:
        cfg = self.cfg
        if cfg.odds_source != "http":
            return
        sim = effective_env(self.config) == "sim"
        key = os.environ.get("ODDS_API_KEY", "") or ("kxfeed-sim" if sim else "")
        if not key:
            mx.ODDS_REQUESTS.labels("http", "no_key").inc()
            self.log.error(
                "odds_source is http but ODDS_API_KEY is not set: no sportsbook odds, "
                "complement arbitrage only"
            )
            return
        host = "127.0.0.1" if self.config.sim.host in ("", "0.0.0.0") else self.config.sim.host
        url = cfg.odds_url or (f"http://{host}:{sim_port(self.config)}/v4" if sim else PUBLIC_ODDS_API)
        sports = sorted({lg.sport_key for lg in self.leagues.values()})
        self.odds_api = OddsApi(
            url,
            key,
            sports,
            cfg.odds_regions,
            list(cfg.odds_bookmakers),
            cfg.odds_min_remaining,
            cfg.odds_timeout_s,
        )

    async def main(self) -> None:
        self.spawn(self._ticker(), name="ticker")
        self.spawn(self._odds_loop(), name="odds")
        if self.cfg.discover:
            self.spawn(self._discovery(), name="discovery")
        if self.cfg.seed_books:
            self.spawn(self._seeder(), name="seeder")
        while not self.stopping.is_set():
            msgs = await self.sub.recv()
            t_in = time.time_ns()
            msgs, odds = self._watch_orderbook(msgs)
            self._emit(self.detector.handle(msgs, t_in // 1_000_000, t_in))
            if odds:
                self._apply_parsed(parse_messages(odds, self.cfg.devig), "bus")

    async def teardown(self) -> None:
        self.sync.sync(self.detector.counts)
        self.sync.burst.flush()
        self.sync.info.flush()
        self.sub.close()
        if self.odds_api is not None:
            await self.odds_api.close()

    # ---- output ----------------------------------------------------------------------------
    def _emit(self, cands: list[Candidate]) -> None:
        if not cands or self.pub is None:
            return
        msgs: list[Message] = []
        for c in cands:
            ts = max(time.time_ns(), self._last_ts + 1000)  # distinct to the µs the database keeps
            self._last_ts = ts
            c.detail["latency_us"] = (ts - c.t_in_ns) // 1000
            if c.trigger_ts_recv:
                c.detail["since_recv_us"] = (ts - c.trigger_ts_recv) // 1000
            msgs.append(c.to_signal(ts))
        self.pub.publish_many(msgs)
        done = time.time_ns()
        for c, m in zip(cands, msgs, strict=True):
            mx.LATENCY.labels(str(c.detail.get("trigger", ""))).observe((done - c.t_in_ns) / 1e9)
            mx.SIGNALS.labels(c.strategy, c.side).inc()
            self.recent.append(to_jsonable(m))
        self.published += len(msgs)

    # ---- periodic work ---------------------------------------------------------------------
    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(_TICK_S)
            now = time.time_ns()
            if self._ob_epoch is not None and time.monotonic() - self._ob_seen > self._ob_timeout:
                self._unverify("orderbook_silent")
                self._ob_epoch = None
            self._emit(self.detector.tick(now // 1_000_000, now))
            trips = self.detector.ledger.trips
            if trips > self._trips_synced:
                mx.BREAKER_TRIPS.inc(trips - self._trips_synced)
                self.log.warning(
                    "circuit breaker tripped: too many signals per minute",
                    extra={"ctx": {"trips": trips, "cooldown_s": self.cfg.breaker_cooldown_s}},
                )
                self._trips_synced = trips
            self.sync.sync(self.detector.counts)

    def _watch_orderbook(self, msgs: list[Message]) -> tuple[list[Message], list[Odds]]:
        """Note the orderbook's heartbeats (a restart or silence unverifies every book);
        the rest: book news, and odds."""
        rest: list[Message] = []
        odds: list[Odds] = []
        for m in msgs:
            if type(m) is Odds:
                odds.append(m)
            elif type(m) is not Heartbeat:
                rest.append(m)
            elif m.worker.startswith("orderbook"):
                self._ob_seen = time.monotonic()
                ident = (m.pub, m.epoch)
                if self._ob_epoch is not None and self._ob_epoch != ident:
                    self._unverify("orderbook_restarted")
                self._ob_epoch = ident
        return rest, odds

    def _on_drop(self, pub: str, epoch: int, kind: str, first_missing: int, count: int) -> None:
        if kind in ("bookstate", "tob", "depth"):
            self._unverify("bus_drop")

    def _unverify(self, cause: str) -> None:
        self.detector.unverify_all(time.time_ns() // 1_000_000)
        self.seeder.reset()
        mx.UNVERIFIED.labels(cause).inc()
        self.log.warning("every book marked not fresh until heard of again", extra={"ctx": {"cause": cause}})

    async def _seeder(self) -> None:
        """Ask the orderbook for books the bus has not told us about yet."""
        while True:
            await asyncio.sleep(0.5)
            await self.seeder.round(time.time_ns)

    async def _discovery(self) -> None:
        cfg = self.cfg
        rest = RestClient(resolve(self.config).rest_url, timeout_s=10.0)
        filt = MarketFilter(series=frozenset(cfg.series))
        wait = 1.0
        try:
            while True:
                try:
                    found = await discover(rest, filt, SeriesCatalog(rest))
                except (RestError, OSError) as exc:
                    mx.DISCOVERY.labels("failed").inc()
                    self.sync.burst.event("discovery", "sports market discovery failed", error=str(exc)[:200])
                    await asyncio.sleep(wait)
                    wait = min(60.0, wait * 2)
                    continue
                wait = 1.0
                mx.DISCOVERY.labels("ok").inc()
                now = time.time_ns()
                self._emit(self.detector.handle(list(found.values()), now // 1_000_000, now))
                self.log.info("sports markets discovered", extra={"ctx": {"markets": len(found)}})
                await asyncio.sleep(cfg.rediscover_s)
        finally:
            await rest.close()

    # ---- odds ------------------------------------------------------------------------------
    async def _odds_loop(self) -> None:
        cfg = self.cfg
        if cfg.odds_source == "bus":
            return  # Odds messages arrive with the book news (main)
        files = OddsFiles(cfg.odds_path) if cfg.odds_source == "file" and cfg.odds_path else None
        if cfg.odds_source == "file" and files is None:
            self.log.error("odds_source is file but odds_path is empty: no sportsbook odds")
        last = -float("inf")
        while not self.stopping.is_set():
            # A sport whose first Kalshi game just appeared is asked for at once, not a poll later.
            fresh_sport = bool(self._live_sports() - self._polled_sports)
            if time.monotonic() - last >= cfg.odds_poll_s or (files is None and fresh_sport):
                last = time.monotonic()
                if files is not None:
                    for path, body in files.next():
                        self._apply_odds(body, "file", str(path.name))
                elif self.odds_api is not None:
                    await self.poll_odds()
            await sleep_until(self.stopping, min(0.5, cfg.odds_poll_s))

    def _live_sports(self) -> set[str]:
        """Sport keys with Kalshi games being watched."""
        return {g.league.sport_key for g in self.detector.catalog.games.values() if g.league is not None}

    async def poll_odds(self) -> int:
        """One round of The Odds API requests; returns events applied."""
        api = self.odds_api
        if api is None:
            return 0
        # Each request costs quota: ask only for sports with Kalshi games being watched.
        live = self._live_sports()
        self._polled_sports |= live
        sports = [s for s in api.sports if s in live]
        async with self._refresh_lock:
            fetched = await api.fetch_all(time.monotonic(), sports)
        self.odds_polls += 1
        applied = 0
        for f in fetched:
            if api.remaining is not None:
                mx.ODDS_QUOTA.set(api.remaining)
            if f.body is None:
                mx.ODDS_REQUESTS.labels("http", f.error).inc()
                if f.error != "held":
                    self.sync.burst.event(
                        f"odds-{f.error}", "odds request failed", sport=f.sport, status=f.status
                    )
                continue
            mx.ODDS_REQUESTS.labels("http", "ok").inc()
            applied += self._apply_odds(f.body, "http", f.sport)
        if api.remaining is not None and api.remaining < api.min_remaining:
            self.sync.info.event(
                "odds-quota", "The Odds API quota nearly used up: polling paused", remaining=api.remaining
            )
        return applied

    def _apply_odds(self, body: bytes, source: str, origin: str) -> int:
        return self._apply_parsed(parse_events(body, self.cfg.devig), source)

    def _apply_parsed(self, res: ParseResult, source: str) -> int:
        if source != "http":
            mx.ODDS_REQUESTS.labels(source, "ok" if res.events else "empty").inc()
        now = time.time_ns()
        self._emit(self.detector.on_odds(res, now // 1_000_000, now))
        if res.rejected:
            self.sync.sync(self.detector.counts)
        return len(res.events)

    # ---- control ---------------------------------------------------------------------------
    def stats(self) -> dict[str, int]:
        det = self.detector
        counts = det.catalog.match_counts()
        return {
            "markets": len(det.catalog.markets),
            "games": len(det.catalog.games),
            "matched": counts.get("matched", 0),
            "unmatched": sum(v for k, v in counts.items() if k != "matched"),
            "books_fresh": sum(1 for b in det.books.values() if b.valid and b.known),
            "signals": self.published,
            "odds_polls": self.odds_polls,
            "breaker_trips": det.ledger.trips,
        }

    def commands(self) -> dict[type[Command], CommandHandler]:
        return {
            Unmatched: self._on_unmatched,
            Signals: self._on_signals,
            Fair: self._on_fair,
            Ledger: self._on_ledger,
            BreakerReset: self._on_breaker_reset,
            Refresh: self._on_refresh,
        }

    async def _on_unmatched(self, _: Unmatched) -> Any:
        return self.detector.catalog.unmatched()

    async def _on_signals(self, cmd: Signals) -> list[Any]:
        return list(self.recent)[-cmd.n :] if cmd.n > 0 else []

    async def _on_fair(self, cmd: Fair) -> dict[str, Any]:
        catalog = self.detector.catalog
        mk = catalog.markets.get(cmd.ticker)
        if mk is None:
            raise KeyError(f"{cmd.ticker} is not a watched sports market")
        res = catalog.matches.get(mk.event_ticker)
        return {
            "ticker": cmd.ticker,
            "fair_ppm": mk.fair,
            "why": mk.fair_why,
            "books": list(mk.fair_books),
            "outcome": mk.outcome,
            "odds_event": res.odds_id if res else "",
            "match": res.reason if res else "",
            "confidence": res.confidence if res else 0.0,
        }

    async def _on_ledger(self, _: Ledger) -> Any:
        return self.detector.ledger.summary(time.time_ns() // 1_000_000)

    async def _on_breaker_reset(self, _: BreakerReset) -> Any:
        self.detector.ledger.reset_breaker()
        self.log.info("circuit breaker reset by control command")
        return self.detector.ledger.summary(time.time_ns() // 1_000_000)

    async def _on_refresh(self, _: Refresh) -> dict[str, Any]:
        applied = await self.poll_odds() if self.odds_api is not None else 0
        now = time.time_ns()
        before = self.published
        self._emit(self.detector.evaluate_all(now // 1_000_000, now))
        return {"odds_events": applied, "signals": self.published - before, "at_ms": now // 1_000_000}


WORKER = ArbWorker
