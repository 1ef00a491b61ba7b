"""Restart policy, pure: which children restart together, how soon, and when to give up.

No clocks and no randomness of its own: callers pass ``now`` (monotonic seconds)
and a random number, so every decision is reproducible in tests.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import shared.backoff

Strategy = Literal["one_for_one", "rest_for_one", "one_for_all"]
RestartType = Literal["permanent", "transient", "temporary"]
OnIntensity = Literal["park", "exit"]


@dataclass(frozen=True)
class PolicySettings:
    strategy: Strategy = "one_for_one"
    max_restarts: int = 5
    period_s: float = 60.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    backoff_multiplier: float = 2.0
    backoff_jitter: float = 0.2
    backoff_reset_s: float = 60.0
    on_intensity: OnIntensity = "park"
    park_backoff_initial_s: float = 30.0
    park_backoff_max_s: float = 600.0


def should_restart(restart: RestartType, abnormal: bool) -> bool:
    """OTP semantics: permanent always, transient only after an abnormal exit, temporary never."""
    if restart == "permanent":
        return True
    if restart == "transient":
        return abnormal
    return False


def restart_group(strategy: Strategy, order: Sequence[str], failed: str) -> list[str]:
    """The children that restart because ``failed`` did, in start order (``failed`` included)."""
    if strategy == "one_for_one":
        return [failed]
    if strategy == "rest_for_one":
        return list(order[order.index(failed) :])
    return list(order)


class Backoff:
    """Exponential restart delay with jitter, capped, reset after a stable run.

    The jitter only shortens a delay (by up to ``jitter`` of it), so the cap holds and
    children that failed together do not come back in lock-step.
    """

    def __init__(
        self, initial_s: float, max_s: float, multiplier: float, jitter: float, reset_after_s: float
    ) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self.multiplier = multiplier
        self.jitter = min(max(jitter, 0.0), 1.0)
        self.reset_after_s = reset_after_s
        self.attempts = 0

    @classmethod
    def from_settings(cls, s: PolicySettings) -> Backoff:
        return cls(
            s.backoff_initial_s, s.backoff_max_s, s.backoff_multiplier, s.backoff_jitter, s.backoff_reset_s
        )

    def retune(self, s: PolicySettings) -> None:
        """New parameters (config reload), keeping how far along the sequence this child is."""
        self.initial_s = s.backoff_initial_s
        self.max_s = s.backoff_max_s
        self.multiplier = s.backoff_multiplier
        self.jitter = min(max(s.backoff_jitter, 0.0), 1.0)
        self.reset_after_s = s.backoff_reset_s

    def next_delay(self, ran_for_s: float, rand: float) -> float:
        """Delay before the next start of a child that ran ``ran_for_s`` before failing.

        ``rand`` is uniform in [0, 1).
        """
        if ran_for_s >= self.reset_after_s:
            self.attempts = 0
        # The exponent is bounded so a long crash loop cannot overflow the float.
        base = min(self.max_s, self.initial_s * self.multiplier ** min(self.attempts, 64))
        self.attempts += 1
        return base * (1.0 - self.jitter * rand)


def park_backoff(s: PolicySettings, rng: random.Random) -> shared.backoff.Backoff:
    """A parked child's restart pacing: long, capped, and the jitter only shortens it a little."""
    return shared.backoff.Backoff(
        s.park_backoff_initial_s, s.park_backoff_max_s, rng=rng, jitter=min(max(s.backoff_jitter, 0.0), 1.0)
    )


class Intensity:
    """At most ``max_restarts`` restarts in any ``period_s`` window (OTP's intensity/period).

    The supervisor keeps one per child: one flapping child must not use up the others' budget.
    """

    def __init__(self, max_restarts: int, period_s: float) -> None:
        self.max_restarts = max_restarts
        self.period_s = period_s
        self._times: deque[float] = deque()

    def _expire(self, now: float) -> None:
        while self._times and self._times[0] <= now - self.period_s:
            self._times.popleft()

    def allow(self, now: float) -> bool:
        """Record a restart at ``now`` if the budget allows it; False means escalate."""
        self._expire(now)
        if len(self._times) >= self.max_restarts:
            return False
        self._times.append(now)
        return True

    def used(self, now: float) -> int:
        self._expire(now)
        return len(self._times)

    def clear(self) -> None:
        self._times.clear()
