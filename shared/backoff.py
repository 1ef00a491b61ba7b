"""Reconnect and restart pacing: capped exponential backoff with jitter, reset after a stable period.

Pure: the caller passes ``now`` (monotonic seconds) and may pass its own RNG.
"""

from __future__ import annotations

import random


class Backoff:
    """``delay()`` = uniform((1 - jitter) * c, c) with c = min(cap, initial * 2**attempt);
    attempt grows per failure.

    ``jitter`` 1.0 (the default) is full jitter, best for many clients reconnecting at once;
    a smaller one keeps a floor under each delay (a parked worker must really wait).
    A connection that stayed up ``reset_after_s`` proves the trouble is over: the next
    failure starts again from ``initial``.
    """

    def __init__(
        self,
        initial_s: float = 0.25,
        max_s: float = 30.0,
        reset_after_s: float = 60.0,
        rng: random.Random | None = None,
        jitter: float = 1.0,
    ) -> None:
        if initial_s <= 0 or max_s < initial_s:
            raise ValueError(f"backoff needs 0 < initial ({initial_s}) <= max ({max_s})")
        if not 0.0 <= jitter <= 1.0:
            raise ValueError(f"backoff jitter must be within 0..1, not {jitter}")
        self.jitter = jitter
        self.initial_s = initial_s
        self.max_s = max_s
        self.reset_after_s = reset_after_s
        self.attempt = 0
        self._rng = rng or random.Random()
        self._up_since: float | None = None

    def connected(self, now: float) -> None:
        self._up_since = now

    def disconnected(self, now: float) -> None:
        if self._up_since is not None and now - self._up_since >= self.reset_after_s:
            self.attempt = 0
        self._up_since = None

    def ceiling(self) -> float:
        """The upper bound of the next delay."""
        # min() before the power would overflow to inf for large attempts; cap the exponent.
        return min(self.max_s, self.initial_s * 2 ** min(self.attempt, 62))

    def delay(self) -> float:
        """The wait before the next attempt; counts the attempt."""
        ceiling = self.ceiling()
        self.attempt += 1
        return self._rng.uniform(ceiling * (1.0 - self.jitter), ceiling)

    def reset(self) -> None:
        """The trouble is over (said by the caller): the next delay starts from ``initial``."""
        self.attempt = 0
        self._up_since = None
