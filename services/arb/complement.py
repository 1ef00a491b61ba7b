"""In-event complement arbitrage: buy every outcome of one game for less than it must pay.

Exactly one outcome of a game wins, so one YES of every outcome pays $1 and one NO of
every outcome pays $(n - 1). When the asks plus Kalshi's fees come to less, the profit
is locked whatever happens: no sportsbook, no fair value, no Kelly limit - only depth
(all legs walked together) and the ledger's room bound the size. Games need their full
set of outcome markets (the league table's ``outcomes``), every book fresh and every
market active with a fee model.
"""

from __future__ import annotations

from typing import Any

from shared.config import ArbConfig

from . import sizing
from .books import BookView
from .candidate import Candidate
from .catalog import SportsCatalog
from .fees import FEE_DEN_CONTRACT, FeeModel
from .ledger import ExposureLedger, SignalGate
from .matching import Game

PPM = 1_000_000


class ComplementArbitrage:
    """Owned by :class:`~services.arb.detector.Detector` and called per game; the detector's
    catalog, ledger, signal gate, books, last candidates and counts are handed in (shared, mutated
    in place)."""

    def __init__(
        self,
        *,
        cfg: ArbConfig,
        catalog: SportsCatalog,
        ledger: ExposureLedger,
        gate: SignalGate,
        books: dict[str, BookView],
        last: dict[tuple[str, str, str], tuple[Any, ...]],
        counts: dict[str, int],
        max_book_age_ms: int,
        min_complement_micro: int,
        min_complement_num: int,
    ) -> None:
        self.cfg = cfg
        self.catalog = catalog
        self.ledger = ledger
        self.gate = gate
        self.books = books
        self.last = last
        self.counts = counts
        self.max_book_age_ms = max_book_age_ms
        self.min_complement_micro = min_complement_micro
        self.min_complement_num = min_complement_num

    def count(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    def evaluate(self, game: Game, now_ms: int, t_in_ns: int, trigger: str, out: list[Candidate]) -> None:
        league = game.league
        if league is None or len(game.markets) != league.outcomes:
            return
        tickers = [game.markets[c] for c in sorted(game.markets)]
        bks: list[BookView] = []
        models: list[FeeModel] = []
        for t in tickers:
            mk = self.catalog.markets[t]
            bk = self.books.get(t)
            if bk is None or not bk.fresh(now_ms, self.max_book_age_ms) or not mk.active or mk.fee is None:
                break
            bks.append(bk)
            models.append(mk.fee)
        n = len(tickers)
        for side, payoff in (("yes", PPM), ("no", (n - 1) * PPM)):
            key = ("complement", game.event_ticker, side)
            if len(bks) != n:
                self.last.pop(key, None)
                continue
            tops = [bk.best_ask(side)[0] for bk in bks]
            if not all(tops):
                self.last.pop(key, None)
                continue
            fee_num = sum(f.per_contract_num(p) for f, p in zip(models, tops, strict=True))
            if (payoff - 100 * sum(tops)) * FEE_DEN_CONTRACT - fee_num < self.min_complement_num:
                self.last.pop(key, None)
                continue
            self.count("evaluated_complement")
            self._size_complement(game, tickers, bks, models, side, payoff, now_ms, t_in_ns, trigger, out)

    def _size_complement(
        self,
        game: Game,
        tickers: list[str],
        bks: list[BookView],
        fees: list[FeeModel],
        side: str,
        payoff: int,
        now_ms: int,
        t_in_ns: int,
        trigger: str,
        out: list[Candidate],
    ) -> None:
        key = ("complement", game.event_ticker, side)
        ladders = [bk.asks(side) for bk in bks]
        bundles, fills = sizing.complement_walk(ladders, payoff, fees, self.min_complement_micro)
        if bundles == 0:
            self.last.pop(key, None)
            return
        opportunity = (tuple(f[-1][0] for f in fills), bundles)
        if self.last.get(key) == opportunity:
            return
        sport = game.league.name if game.league else game.series

        def spend(count: int) -> int:
            return sum(sum(sizing.charge(sizing.take(f, count), m)) for f, m in zip(fills, fees, strict=True))

        count, limited = bundles, "depth"
        room, which = self.ledger.room(tickers, sport, now_ms)
        if spend(count) > room:
            lo, hi = 0, count
            while lo < hi:
                mid = (lo + hi + 1) // 2
                lo, hi = (mid, hi) if spend(mid) <= room else (lo, mid - 1)
            count, limited = lo, f"exposure_{which}"
        legs = sizing.take_bundles(fills, count)
        charges = [sizing.charge(f, m) for f, m in zip(legs, fees, strict=True)]
        cost = sum(c for c, _ in charges)
        fee_total = sum(f for _, f in charges)
        profit = payoff * count // 100 - cost - fee_total
        booked = [(t, side, count, c + f) for t, (c, f) in zip(tickers, charges, strict=True)]
        if not self.gate.send(
            key, opportunity, booked, sport, now_ms, (count, profit, self.min_complement_micro, limited)
        ):
            return
        detail = {
            "payoff": payoff,
            "legs": [
                {"ticker": t, "fills": f, "cost": c, "fees": fe, "xseq": bk.xseq, "depth_lag": bk.depth_lag()}
                for t, f, (c, fe), bk in zip(tickers, legs, charges, bks, strict=True)
            ],
            "cost": cost,
            "fees_total": fee_total,
            "profit": profit,
            "depth": bundles,
            "limited_by": limited,
            "trigger": trigger,
        }
        out.append(
            Candidate(
                "complement",
                game.event_ticker,
                side,
                sum(f[-1][0] for f in legs),
                count,
                payoff,
                profit * 100 // count,
                -(-fee_total * 100 // count),
                tickers,
                detail,
                t_in_ns,
                max(bk.trigger_ts_recv for bk in bks),
            )
        )
