"""The simulator's REST rate limit: Kalshi's tier table and token bucket, one bucket per caller.

The table and the bucket are the client's own (:mod:`shared.kalshi.ratelimit`), so the
simulator throttles exactly where the client expects it to.
"""

from __future__ import annotations

from shared.kalshi.ratelimit import READ_TIERS, REQUEST_COST, TokenBucket

#: Kalshi's throttle body: no Retry-After, no X-RateLimit-* headers.
TOO_MANY = {"error": "too many requests"}


class TokenBuckets:
    """One bucket per caller (API key id, or peer address when unsigned); ``now`` in seconds."""

    def __init__(self, tier: str = "basic") -> None:
        if tier not in READ_TIERS:
            raise ValueError(f"unknown rate-limit tier {tier!r}; tiers: {', '.join(READ_TIERS)}")
        self.tier = tier
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, caller: str, now: float, cost: float = REQUEST_COST) -> bool:
        bucket = self._buckets.get(caller)
        if bucket is None:  # a new caller starts with a full bucket
            bucket = self._buckets[caller] = TokenBucket.for_tier(self.tier, now=now)
        return bucket.take(now, cost)
