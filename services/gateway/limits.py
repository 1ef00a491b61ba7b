"""Per-client rate limit: one token bucket per remote address (pure; the caller passes the clock).

A bucket holds up to ``burst`` tokens and refills at ``rate`` a second; a request takes one.
An empty bucket refuses the request and says when the next token arrives (``Retry-After``).
The table of buckets is bounded: past ``max_clients`` the least recently seen client is
forgotten (it comes back with a full bucket, which is the generous side to err on).
"""

from __future__ import annotations

import math
from collections import OrderedDict


class RateLimiter:
    def __init__(self, rate: float, burst: int, max_clients: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, at)
        #: Clients forgotten to keep the table bounded.
        self.evicted = 0

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, client: str, now: float) -> float:
        """0.0 when ``client`` may go ahead; otherwise the seconds until it may try again."""
        if not self.enabled:
            return 0.0
        tokens, at = self._buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - at) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[client] = (tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
            self.evicted += 1
        return wait


def retry_after(wait_s: float) -> str:
    """The ``Retry-After`` header value: whole seconds, at least 1."""
    return str(max(1, math.ceil(wait_s)))
