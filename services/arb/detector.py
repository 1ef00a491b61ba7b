"""The detector: bus messages and odds in, signal candidates out. Pure: ``now`` is passed in.

Two strategies:

- ``sportsbook``: buy YES (or NO) of one market when its fair value from the sportsbook
  consensus beats the live ask by ``min_edge`` per contract after Kalshi's fees. Both
  legs must be fresh: the book VALID and heard of within ``max_book_age``, the fair
  value made of books younger than ``max_odds_age``.
- ``complement``: buy YES of every outcome of one game when the asks plus fees sum
  below $1 (or NO of every outcome below $n - 1): the profit is locked, no sportsbook
  needed. Sized by walking all legs' depth together.

Sizes walk the book's depth (the edge shrinks as size grows), then are capped by a
Kelly fraction (sportsbook only: a locked profit has no Kelly limit) and by the
paper ledger's exposure room; the circuit breaker can hold everything. An
opportunity is signalled once; it is signalled again only when it changes (price or
size on offer), and forgotten when it disappears.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shared.config import ArbConfig
from shared.messages import BookState, Depth, FeeUpdate, MarketLifecycle, MarketMeta, Message, TopOfBook

from . import sizing
from .books import BookView
from .candidate import Candidate
from .catalog import MarketInfo, Settings, SportsCatalog
from .complement import ComplementArbitrage
from .fees import CENT, CENTICENT, FEE_DEN_CONTRACT, FeeModel, FeeSchedule
from .leagues import League
from .ledger import ExposureLedger, ExposureLimits, SignalGate
from .odds import ParseResult
from .tickers import series_of

PPM = 1_000_000
USD = 1_000_000  # micro-dollars


class Detector:
    def __init__(self, cfg: ArbConfig, leagues: dict[str, League]) -> None:
        self.cfg = cfg
        series = frozenset(cfg.series)
        self.series = series
        settings = Settings(
            series,
            cfg.devig,
            cfg.consensus,
            max(1, cfg.min_books),
            int(cfg.max_odds_age_s * 1000),
            cfg.min_confidence,
        )
        self.catalog = SportsCatalog(
            settings, leagues, FeeSchedule(CENT if cfg.fee_precision == "cent" else CENTICENT)
        )
        self.counts = self.catalog.counts
        self.ledger = ExposureLedger(
            ExposureLimits(
                cfg.max_market_exposure_usd * USD,
                cfg.max_sport_exposure_usd * USD,
                cfg.max_daily_exposure_usd * USD,
                cfg.max_signals_per_minute,
                int(cfg.breaker_cooldown_s * 1000),
            )
        )
        self.books: dict[str, BookView] = {}
        self.last: dict[tuple[str, str, str], tuple[Any, ...]] = {}
        self.max_book_age_ms = int(cfg.max_book_age_s * 1000)
        self.min_edge_micro = cfg.min_edge * 100
        self.min_edge_num = self.min_edge_micro * FEE_DEN_CONTRACT
        self.min_complement_micro = cfg.min_complement_edge * 100
        self.min_complement_num = self.min_complement_micro * FEE_DEN_CONTRACT
        self.bankroll_micro = cfg.bankroll_usd * USD
        self._order = 0
        self.gate = SignalGate(self.ledger, self.last, self.counts, cfg.min_size)
        self.complement = ComplementArbitrage(
            cfg=cfg,
            catalog=self.catalog,
            ledger=self.ledger,
            gate=self.gate,
            books=self.books,
            last=self.last,
            counts=self.counts,
            max_book_age_ms=self.max_book_age_ms,
            min_complement_micro=self.min_complement_micro,
            min_complement_num=self.min_complement_num,
        )

    def count(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    # ---- inputs ----------------------------------------------------------------------------
    def handle(self, msgs: Iterable[Message], now_ms: int, t_in_ns: int) -> list[Candidate]:
        """Apply a batch of bus messages, then evaluate each market they touched once."""
        dirty: dict[str, str] = {}
        events: dict[str, str] = {}
        cat = self.catalog
        for m in msgs:
            t = type(m)
            if t is TopOfBook or t is Depth or t is BookState:
                ticker = m.ticker  # type: ignore[union-attr]
                bk = self.books.get(ticker)
                if bk is None:
                    if series_of(ticker, self.series) is None:
                        self.count("rejected.message")
                        continue
                    bk = self.books[ticker] = BookView()
                self._order += 1
                if t is TopOfBook:
                    bk.apply_tob(m, now_ms, self._order)  # type: ignore[arg-type]
                    dirty[ticker] = "tob"
                elif t is Depth:
                    bk.apply_depth(m, now_ms, self._order)  # type: ignore[arg-type]
                    dirty.setdefault(ticker, "depth")
                else:
                    bk.apply_state(m.valid, now_ms)  # type: ignore[union-attr]
                    if not m.valid:  # type: ignore[union-attr]
                        dirty[ticker] = "bookstate"
            elif t is MarketMeta:
                ev = cat.on_meta(m, now_ms)  # type: ignore[arg-type]
                if ev is not None:
                    events[ev] = "meta"
            elif t is FeeUpdate:
                ev = cat.on_fee(m)  # type: ignore[arg-type]
                if ev is not None:
                    events[ev] = "fee"
            elif t is MarketLifecycle:
                if series_of(m.ticker, self.series) is None:  # type: ignore[union-attr]
                    self.count("rejected.message")
                    continue
                ev = cat.on_lifecycle(m)  # type: ignore[arg-type]
                if m.event_type in ("determined", "settled"):  # type: ignore[union-attr]
                    self.forget(m.ticker)  # type: ignore[union-attr]
                if ev is not None:
                    events[ev] = "lifecycle"
            else:
                self.count("ignored.kind")
        out: list[Candidate] = []
        for ticker, trigger in dirty.items():
            mk = cat.markets.get(ticker)
            if mk is not None:
                self._edge(mk, now_ms, t_in_ns, trigger, out)
                events.setdefault(mk.event_ticker, trigger)
        for ev, trigger in events.items():
            game = cat.games.get(ev)
            if game is None:
                continue
            if trigger not in ("tob", "depth", "bookstate"):
                for mt in game.markets.values():
                    self._edge(cat.markets[mt], now_ms, t_in_ns, trigger, out)
            self.complement.evaluate(game, now_ms, t_in_ns, trigger, out)
        return out

    def on_odds(self, res: ParseResult, now_ms: int, t_in_ns: int) -> list[Candidate]:
        for reason, n in res.rejected.items():
            self.count(f"odds_rejected.{reason}", n)
        touched = self.catalog.on_odds(res.events, now_ms)
        return self._games(touched, now_ms, t_in_ns, "odds")

    def evaluate_all(self, now_ms: int, t_in_ns: int, trigger: str = "refresh") -> list[Candidate]:
        return self._games(set(self.catalog.games), now_ms, t_in_ns, trigger)

    def tick(self, now_ms: int, t_in_ns: int) -> list[Candidate]:
        """Periodic: fair values whose oldest book aged out are recomputed and re-evaluated."""
        cat = self.catalog
        expired = {
            mk.event_ticker
            for mk in cat.markets.values()
            if mk.fair is not None and now_ms >= mk.fair_expires_ms
        }
        for ev in expired:
            for t in cat.games[ev].markets.values():
                cat.refair(cat.markets[t], now_ms)
        return self._games(expired, now_ms, t_in_ns, "odds_expiry")

    def seed(self, ticker: str, answer: dict[str, Any], now_ms: int, t_in_ns: int) -> list[Candidate]:
        """A book from the orderbook worker's ``book`` answer (start-up, after a bus drop)."""
        if series_of(ticker, self.series) is None:
            self.count("rejected.message")
            return []
        self._order += 1
        self.books.setdefault(ticker, BookView()).seed(answer, now_ms, self._order)
        mk = self.catalog.markets.get(ticker)
        return [] if mk is None else self._games({mk.event_ticker}, now_ms, t_in_ns, "seed")

    def unverify_all(self, now_ms: int) -> None:
        """Book news was lost on the bus: no book counts as fresh until it is heard of again."""
        for bk in self.books.values():
            bk.invalidate(now_ms)

    def forget(self, ticker: str) -> None:
        self.books.pop(ticker, None)
        self.ledger.forget(ticker)
        for key in [k for k in self.last if k[1] == ticker]:
            del self.last[key]

    def _games(self, events: Iterable[str], now_ms: int, t_in_ns: int, trigger: str) -> list[Candidate]:
        out: list[Candidate] = []
        cat = self.catalog
        for ev in sorted(events):
            game = cat.games.get(ev)
            if game is None:
                continue
            for t in game.markets.values():
                self._edge(cat.markets[t], now_ms, t_in_ns, trigger, out)
            self.complement.evaluate(game, now_ms, t_in_ns, trigger, out)
        return out

    # ---- sportsbook edge -------------------------------------------------------------------
    def _vanish(self, strategy: str, key: str, side: str) -> None:
        self.last.pop((strategy, key, side), None)

    def _edge(self, mk: MarketInfo, now_ms: int, t_in_ns: int, trigger: str, out: list[Candidate]) -> None:
        if mk.fair is not None and now_ms >= mk.fair_expires_ms:
            self.catalog.refair(mk, now_ms)
        fair = mk.fair
        bk = self.books.get(mk.ticker)
        why = ""
        if fair is None:
            why = mk.fair_why
        elif bk is None or not bk.fresh(now_ms, self.max_book_age_ms):
            why = "book_not_fresh"
        elif not mk.active:
            why = "inactive"
        elif mk.fee is None:
            why = "fee_unknown"
        if why:
            self.count(f"skip.{why}")
            self._vanish("sportsbook", mk.ticker, "yes")
            self._vanish("sportsbook", mk.ticker, "no")
            return
        assert fair is not None and bk is not None and mk.fee is not None
        self.count("evaluated")
        fee = mk.fee
        for side, value in (("yes", fair), ("no", PPM - fair)):
            price, _ = bk.best_ask(side)
            if (
                not price
                or (value - price * 100) * FEE_DEN_CONTRACT - fee.per_contract_num(price) < self.min_edge_num
            ):
                self._vanish("sportsbook", mk.ticker, side)
                continue
            self._size_edge(mk, bk, side, value, fee, now_ms, t_in_ns, trigger, out)

    def _size_edge(
        self,
        mk: MarketInfo,
        bk: BookView,
        side: str,
        value: int,
        fee: FeeModel,
        now_ms: int,
        t_in_ns: int,
        trigger: str,
        out: list[Candidate],
    ) -> None:
        cfg = self.cfg
        fills = sizing.walk(bk.asks(side), value, fee, self.min_edge_micro)
        depth = sizing.total(fills)
        key = ("sportsbook", mk.ticker, side)
        if depth == 0:
            self.last.pop(key, None)
            return
        spent = sum(sizing.charge(fills, fee))
        kelly = sizing.kelly_count(value, spent * 100 // depth, self.bankroll_micro, cfg.kelly_fraction_ppm)
        # What is on offer, not what we would take of it: a changing fair value or ledger room
        # alone does not make a new opportunity.
        opportunity = (fills[-1][0], depth)
        if self.last.get(key) == opportunity:
            return
        count, limited = (depth, "depth") if depth <= kelly else (kelly, "kelly")
        room, which = self.ledger.room([mk.ticker], mk.sport, now_ms)
        if sum(sizing.charge(sizing.take(fills, count), fee)) > room:
            count, limited = sizing.largest_within(sizing.take(fills, count), fee, room), f"exposure_{which}"
        final = sizing.take(fills, count)
        cost, fees = sizing.charge(final, fee)
        profit = value * count // 100 - cost - fees
        booked = [(mk.ticker, side, count, cost + fees)]
        if not self.gate.send(
            key, opportunity, booked, mk.sport, now_ms, (count, profit, self.min_edge_micro, limited)
        ):
            return
        res = self.catalog.matches.get(mk.event_ticker)
        detail = {
            "method": cfg.devig,
            "consensus": cfg.consensus,
            "books": list(mk.fair_books),
            "odds_age_ms": now_ms - mk.fair_oldest_ms,
            "odds_ms": mk.fair_oldest_ms,  # which sportsbook snapshot the fair value came from
            "odds_event": res.odds_id if res else "",
            "match_confidence": round(res.confidence, 3) if res else 0.0,
            "fills": final,
            "cost": cost,
            "fees_total": fees,
            "profit": profit,
            "depth": depth,
            "kelly": kelly,
            "limited_by": limited,
            "xseq": bk.xseq,
            "depth_lag": bk.depth_lag(),
            "trigger": trigger,
        }
        out.append(
            Candidate(
                "sportsbook",
                mk.ticker,
                side,
                final[-1][0],
                count,
                value,
                profit * 100 // count,
                -(-fees * 100 // count),
                [mk.ticker],
                detail,
                t_in_ns,
                bk.trigger_ts_recv,
            )
        )
