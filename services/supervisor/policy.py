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


def restart_backoff(s: PolicySettings, rng: random.Random) -> shared.backoff.Backoff:
    """A child's restart pacing. The jitter only shortens a delay (by up to ``jitter`` of it),
    so the cap holds and children that failed together do not come back in lock-step. An
    initial delay above the cap is the cap (as ``min`` would make it anyway)."""
    b = shared.backoff.Backoff(
        _initial(s),
        max(s.backoff_max_s, _initial(s)),
        s.backoff_reset_s,
        rng=rng,
        jitter=min(max(s.backoff_jitter, 0.0), 1.0),
        multiplier=s.backoff_multiplier,
    )
    return b


def _initial(s: PolicySettings) -> float:
    # [supervisor] backoff_initial_s is not validated: 0 (or below) has always meant "restart at
    # once"; the shared Backoff needs a positive start, and a nanosecond is at once.
    return max(min(s.backoff_initial_s, s.backoff_max_s), 1e-9)


def retune(b: shared.backoff.Backoff, s: PolicySettings) -> None:
    """New parameters (config reload), keeping how far along the sequence this child is."""
    b.initial_s = _initial(s)
    b.max_s = max(s.backoff_max_s, b.initial_s)
    b.multiplier = s.backoff_multiplier
    b.jitter = min(max(s.backoff_jitter, 0.0), 1.0)
    b.reset_after_s = s.backoff_reset_s


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
