"""The one backoff for every state machine: capped exponential, jittered, reset after stable uptime.

Pure: no clock of its own (the caller passes ``now`` in monotonic seconds, or how long the
run lasted) and randomness from an injected ``random.Random`` (or an explicit uniform
number), so every delay is reproducible in tests. The connector, the supervisor (restarts
and parking), the orderbook's snapshot requests, the writer, the REST client and the arb
odds sources all pace themselves with it. I/O loops use it through :mod:`shared.retry`,
which adds the give-up limits, the classification of failures and the per-retry notice.
"""

from __future__ import annotations

import random


def ceiling(initial_s: float, max_s: float, attempt: int, multiplier: float = 2.0) -> float:
    """``min(max_s, initial_s * multiplier**attempt)``: the longest wait after ``attempt``
    earlier failures."""
    # min() after the power would overflow to inf for large attempts; cap the exponent.
    return min(max_s, initial_s * multiplier ** min(attempt, 62))


class Backoff:
    """``delay()`` = c * (1 - jitter * r), r uniform in [0, 1), c = :func:`ceiling` of the
    attempt; attempt grows per failure.

    ``jitter`` 1.0 (the default) is full jitter, best for many clients reconnecting at once;
    a smaller one keeps a floor under each delay (a parked worker must really wait); 0.0 is
    none (deterministic pacing, e.g. per-book snapshot requests). A connection that stayed up
    ``reset_after_s`` proves the trouble is over: the next failure starts again from ``initial``.
    """

    def __init__(
        self,
        initial_s: float = 0.25,
        max_s: float = 30.0,
        reset_after_s: float = 60.0,
        rng: random.Random | None = None,
        jitter: float = 1.0,
        multiplier: float = 2.0,
    ) -> None:
        if initial_s <= 0 or max_s < initial_s:
            raise ValueError(f"backoff needs 0 < initial ({initial_s}) <= max ({max_s})")
        if not 0.0 <= jitter <= 1.0:
            raise ValueError(f"backoff jitter must be within 0..1, not {jitter}")
        self.jitter = jitter
        self.initial_s = initial_s
        self.max_s = max_s
        self.multiplier = multiplier
        self.reset_after_s = reset_after_s
        self.attempt = 0
        self._rng = rng or random.Random()
        self._up_since: float | None = None

    def connected(self, now: float) -> None:
        self._up_since = now

    def disconnected(self, now: float) -> None:
        if self._up_since is not None:
            self.failed_after(now - self._up_since)
        self._up_since = None

    def failed_after(self, ran_for_s: float) -> None:
        """A run that lasted ``ran_for_s`` failed: if it was stable, start again from ``initial``."""
        if ran_for_s >= self.reset_after_s:
            self.attempt = 0

    def ceiling(self) -> float:
        """The upper bound of the next delay."""
        return ceiling(self.initial_s, self.max_s, self.attempt, self.multiplier)

    def delay(self, rand: float | None = None) -> float:
        """The wait before the next attempt; counts the attempt. ``rand`` (uniform in [0, 1))
        replaces a draw from the rng, for callers that keep their own."""
        c = self.ceiling()
        self.attempt += 1
        r = self._rng.random() if rand is None else rand
        return c * (1.0 - self.jitter * r)

    def reset(self) -> None:
        """The trouble is over (said by the caller): the next delay starts from ``initial``."""
        self.attempt = 0
        self._up_since = None
