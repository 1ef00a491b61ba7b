"""The paper-trading ledger and its circuit breaker.

Every signal the detector emits is booked as if filled: its cost plus fees counts
against three exposure limits - per market, per sport (league), per UTC day - and a
signal is cut down to the room left (or not sent). More than ``per_minute`` signals
within a minute trips the breaker: nothing is sent for ``cooldown_ms`` (or until
``reset``), whatever the opportunities, and the trip is counted.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

DAY_MS = 86_400_000
MINUTE_MS = 60_000


@dataclass(frozen=True)
class ExposureLimits:
    market_micro: int
    sport_micro: int
    day_micro: int
    per_minute: int
    cooldown_ms: int


class ExposureLedger:
    def __init__(self, limits: ExposureLimits) -> None:
        self.limits = limits
        self.by_market: dict[str, int] = {}
        self.by_sport: dict[str, int] = {}
        self.day = -1
        self.day_total = 0
        #: (ticker, side) -> hundredths of a contract held
        self.positions: dict[tuple[str, str], int] = {}
        self.recent: deque[int] = deque()
        self.open_until_ms = 0
        self.trips = 0
        self.signals = 0

    def _roll(self, now_ms: int) -> None:
        day = now_ms // DAY_MS
        if day != self.day:
            self.day = day
            self.day_total = 0

    def room(self, tickers: list[str], sport: str, now_ms: int) -> tuple[int, str]:
        """(micro-dollars that may still be committed, the limit that binds)."""
        self._roll(now_ms)
        lim = self.limits
        rooms = [(lim.market_micro - self.by_market.get(t, 0), "market") for t in tickers]
        rooms.append((lim.sport_micro - self.by_sport.get(sport, 0), "sport"))
        rooms.append((lim.day_micro - self.day_total, "day"))
        room, which = min(rooms)
        return max(0, room), which

    def breaker_open(self, now_ms: int) -> bool:
        return now_ms < self.open_until_ms

    def admit(self, now_ms: int) -> bool:
        """Count one more signal against the per-minute limit; False (and trip) past it."""
        if self.breaker_open(now_ms):
            return False
        recent = self.recent
        while recent and recent[0] <= now_ms - MINUTE_MS:
            recent.popleft()
        if len(recent) >= self.limits.per_minute:
            self.open_until_ms = now_ms + self.limits.cooldown_ms
            self.trips += 1
            recent.clear()
            return False
        recent.append(now_ms)
        return True

    def book(self, legs: list[tuple[str, str, int, int]], sport: str, now_ms: int) -> None:
        """Record a signal: legs of (ticker, side, hundredths, cost + fees in micro-dollars)."""
        self._roll(now_ms)
        self.signals += 1
        for ticker, side, count, spent in legs:
            self.by_market[ticker] = self.by_market.get(ticker, 0) + spent
            self.by_sport[sport] = self.by_sport.get(sport, 0) + spent
            self.day_total += spent
            key = (ticker, side)
            self.positions[key] = self.positions.get(key, 0) + count

    def reset_breaker(self) -> None:
        self.open_until_ms = 0
        self.recent.clear()

    def forget(self, ticker: str) -> None:
        """A settled market's exposure is over (the day and sport totals keep what was spent)."""
        self.by_market.pop(ticker, None)
        for key in [k for k in self.positions if k[0] == ticker]:
            del self.positions[key]

    def summary(self, now_ms: int) -> dict[str, object]:
        self._roll(now_ms)
        return {
            "signals": self.signals,
            "day_micro": self.day_total,
            "by_sport_micro": dict(self.by_sport),
            "markets": len(self.by_market),
            "top_markets_micro": dict(sorted(self.by_market.items(), key=lambda kv: -kv[1])[:10]),
            "breaker_open": self.breaker_open(now_ms),
            "breaker_open_for_ms": max(0, self.open_until_ms - now_ms),
            "breaker_trips": self.trips,
        }


class SignalGate:
    """What the sportsbook and the complement strategies send a sized signal through: booked in
    the ledger, or its refusal counted (``blocked.<why>``). ``last`` keeps what was last sent per
    key, so an unchanged offer is not sent again."""

    def __init__(
        self,
        ledger: ExposureLedger,
        last: dict[tuple[str, str, str], tuple[Any, ...]],
        counts: dict[str, int],
        min_size: int,
    ) -> None:
        self.ledger = ledger
        self.last = last
        self.counts = counts
        self.min_size = min_size

    def send(
        self,
        key: tuple[str, str, str],
        offer: tuple[Any, ...],
        legs: list[tuple[str, str, int, int]],
        sport: str,
        now_ms: int,
        sized: tuple[int, int, int, str],
    ) -> bool:
        """``legs`` as for :meth:`ExposureLedger.book`; ``sized`` is (count, profit, the least profit
        per contract in micro-dollars, what limited the count)."""
        count, profit, min_edge_micro, limited = sized
        if count <= 0 or count < self.min_size or profit * 100 // count < min_edge_micro:
            self._blocked(limited if count < max(1, self.min_size) else "rounding")
            self.last.pop(key, None)
            return False
        if not self.ledger.admit(now_ms):
            self._blocked("breaker")
            return False
        self.ledger.book(legs, sport, now_ms)
        self.last[key] = offer
        return True

    def _blocked(self, why: str) -> None:
        key = f"blocked.{why}"
        self.counts[key] = self.counts.get(key, 0) + 1
