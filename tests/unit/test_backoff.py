"""Reconnect backoff: capped exponential ceiling, full jitter, reset after a stable period."""

from __future__ import annotations

import random

import pytest

from shared.backoff import Backoff


def test_ceiling_doubles_to_the_cap() -> None:
    b = Backoff(0.25, 30.0, 60.0, rng=random.Random(1))
    ceilings = []
    for _ in range(10):
        ceilings.append(b.ceiling())
        b.delay()
    assert ceilings == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_full_jitter_stays_within_zero_and_ceiling() -> None:
    b = Backoff(0.25, 30.0, rng=random.Random(7))
    seen = []
    for _ in range(200):
        ceiling = b.ceiling()
        d = b.delay()
        assert 0.0 <= d <= ceiling
        seen.append(d / ceiling)
    # Full jitter: spread over the whole range, not bunched at the top.
    assert min(seen) < 0.1 and max(seen) > 0.9


def test_huge_attempt_counts_do_not_overflow() -> None:
    b = Backoff(0.25, 30.0)
    b.attempt = 10_000
    assert b.ceiling() == 30.0 and 0 <= b.delay() <= 30.0


def test_reset_only_after_a_stable_connection() -> None:
    b = Backoff(0.25, 30.0, reset_after_s=60.0, rng=random.Random(3))
    for _ in range(5):
        b.delay()
    b.connected(100.0)
    b.disconnected(130.0)  # up 30 s: still flapping
    assert b.attempt == 5
    b.connected(200.0)
    b.disconnected(260.0)  # up a full minute: trouble is over
    assert b.attempt == 0 and b.ceiling() == 0.25


def test_bad_parameters_refused() -> None:
    with pytest.raises(ValueError):
        Backoff(0.0, 1.0)
    with pytest.raises(ValueError):
        Backoff(2.0, 1.0)


def test_partial_jitter_keeps_a_floor_under_every_delay() -> None:
    b = Backoff(1.0, 8.0, rng=random.Random(5), jitter=0.25)
    for _ in range(50):
        ceiling = b.ceiling()
        assert 0.75 * ceiling <= b.delay() <= ceiling
    b.reset()
    assert b.attempt == 0 and b.ceiling() == 1.0
    with pytest.raises(ValueError):
        Backoff(1.0, 2.0, jitter=1.5)
