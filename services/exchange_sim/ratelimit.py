"""Kalshi's REST rate limits: token buckets per tier, 10 tokens per request by default."""

from __future__ import annotations

#: tier -> (read tokens/s, bucket capacity in seconds of budget), from Kalshi's rate-limit page.
TIERS: dict[str, tuple[float, float]] = {
    "basic": (200.0, 2.0),
    "advanced": (300.0, 2.0),
    "expert": (600.0, 1.0),
    "premier": (1_000.0, 1.0),
    "paragon": (2_000.0, 1.0),
    "prime": (4_000.0, 1.0),
    "prestige": (10_000.0, 1.0),
}
REQUEST_COST = 10.0
#: Kalshi's throttle body: no Retry-After, no X-RateLimit-* headers.
TOO_MANY = {"error": "too many requests"}


class TokenBuckets:
    """One bucket per caller (API key id, or peer address when unsigned); ``now`` in seconds."""

    def __init__(self, tier: str = "basic") -> None:
        if tier not in TIERS:
            raise ValueError(f"unknown rate-limit tier {tier!r}; tiers: {', '.join(TIERS)}")
        self.refill, seconds = TIERS[tier]
        self.capacity = self.refill * seconds
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, caller: str, now: float, cost: float = REQUEST_COST) -> bool:
        tokens, ts = self._buckets.get(caller, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - ts) * self.refill)
        if tokens < cost:
            self._buckets[caller] = (tokens, now)
            return False
        self._buckets[caller] = (tokens - cost, now)
        return True
