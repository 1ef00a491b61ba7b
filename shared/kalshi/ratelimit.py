"""Kalshi's REST rate limits: the tier table and the one token bucket, for client and simulator.

The REST client keeps its copy of its key's read budget (:meth:`TokenBucket.reserve`: wait,
then send); the simulator enforces the same table per caller (:meth:`TokenBucket.take`:
refuse with 429 when empty) and paces WebSocket commands with the same bucket, and so does
the connector its own commands (services/connector/pacing.py). Pure: the caller passes
``now`` (monotonic seconds).
"""

from __future__ import annotations

import time

#: Kalshi's read budget per tier: (tokens per second, bucket capacity in seconds of budget).
#: Every request costs REQUEST_COST tokens unless Kalshi lists an exception, so Basic = 20 reads/s.
READ_TIERS: dict[str, tuple[float, float]] = {
    "basic": (200.0, 2.0),
    "advanced": (300.0, 2.0),
    "expert": (600.0, 1.0),
    "premier": (1_000.0, 1.0),
    "paragon": (2_000.0, 1.0),
    "prime": (4_000.0, 1.0),
    "prestige": (10_000.0, 1.0),
}
REQUEST_COST = 10.0
#: Kalshi's published WebSocket limits (changelog 2026-06-18): commands per second and market
#: subscriptions per session. The per-subscription command rate (error 27) and market cap
#: (error 26) exist but are unpublished.
WS_COMMANDS_PER_S = 10_000.0
WS_MARKETS_PER_SESSION = 500_000


class TokenBucket:
    """The client's copy of Kalshi's read bucket: refills ``rate`` tokens/s up to ``capacity``.

    :meth:`reserve` takes the tokens at once and says how long to wait before sending;
    the balance may go negative, so concurrent callers queue in order instead of racing.
    A ``share`` below 1 leaves room for other processes using the same key (and for
    network jitter: requests sent evenly may arrive bunched).
    """

    def __init__(self, rate: float, capacity: float, *, now: float | None = None) -> None:
        if rate <= 0 or capacity <= 0:
            raise ValueError("a token bucket needs a positive rate and capacity")
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.stamp = time.monotonic() if now is None else now

    @classmethod
    def for_tier(cls, tier: str, share: float = 1.0, *, now: float | None = None) -> TokenBucket:
        if tier not in READ_TIERS:
            raise ValueError(f"unknown Kalshi rate-limit tier {tier!r}; tiers: {', '.join(READ_TIERS)}")
        if not 0 < share <= 1:
            raise ValueError(f"budget share must be in (0, 1], not {share}")
        rate, seconds = READ_TIERS[tier]
        return cls(rate * share, rate * seconds * share, now=now)

    @property
    def requests_per_s(self) -> float:
        return self.rate / REQUEST_COST

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def reserve(self, now: float, cost: float = REQUEST_COST) -> float:
        """Take ``cost`` tokens; seconds to wait before the request may go (0: now)."""
        self._refill(now)
        self.tokens -= cost
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    def take(self, now: float, cost: float = REQUEST_COST) -> bool:
        """Take ``cost`` tokens if the bucket holds them (True); else take nothing (False).
        The server's side of the bucket: a request over budget is refused, not queued."""
        self._refill(now)
        if self.tokens < cost:
            return False
        self.tokens -= cost
        return True

    def empty(self, now: float) -> None:
        """The exchange answered 429: whatever we thought we had, the budget is spent."""
        self._refill(now)
        self.tokens = min(self.tokens, 0.0)
