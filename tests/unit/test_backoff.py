"""Reconnect backoff: capped exponential ceiling, full jitter, reset after a stable period."""

from __future__ import annotations

import random

import pytest

from shared.backoff import Backoff, ceiling


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


def test_seeded_rng_makes_the_jitter_reproducible_and_within_range() -> None:
    a = Backoff(0.5, 10.0, rng=random.Random(42), jitter=0.5)
    b = Backoff(0.5, 10.0, rng=random.Random(42), jitter=0.5)
    for _ in range(30):
        ceiling = a.ceiling()
        d = a.delay()
        assert d == b.delay()
        assert 0.5 * ceiling <= d <= ceiling


def test_no_jitter_is_the_ceiling_and_an_explicit_draw_replaces_the_rng() -> None:
    b = Backoff(1.0, 600.0, jitter=0.0)
    assert [b.delay() for _ in range(4)] == [1.0, 2.0, 4.0, 8.0]
    c = Backoff(2.0, 2.0, jitter=0.25)
    assert c.delay(0.5) == pytest.approx(1.75)


def test_multiplier_and_reset_after_a_stable_run_length() -> None:
    b = Backoff(1.0, 100.0, reset_after_s=10.0, jitter=0.0, multiplier=3.0)
    assert [b.delay() for _ in range(3)] == [1.0, 3.0, 9.0]
    b.failed_after(9.9)  # not stable: the sequence goes on
    assert b.delay() == 27.0
    b.failed_after(10.0)  # stable: from the start again
    assert b.delay() == 1.0


def test_ceiling_function_is_the_one_the_backoff_uses() -> None:
    assert [ceiling(2.0, 5.0, n) for n in range(4)] == [2.0, 4.0, 5.0, 5.0]
    assert ceiling(0.25, 30.0, 10_000) == 30.0
