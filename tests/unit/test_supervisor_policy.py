"""Restart policy: backoff growth, cap, jitter, reset; intensity window; strategy groups."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.supervisor.policy import (
    Intensity,
    PolicySettings,
    restart_backoff,
    restart_group,
    should_restart,
)
from shared.backoff import Backoff


def _restart(initial: float, cap: float, mult: float, jitter: float, reset_after_s: float) -> Backoff:
    s = PolicySettings(
        backoff_initial_s=initial,
        backoff_max_s=cap,
        backoff_multiplier=mult,
        backoff_jitter=jitter,
        backoff_reset_s=reset_after_s,
    )
    return restart_backoff(s, random.Random(0))


def _next(b: Backoff, ran_for_s: float, rand: float) -> float:
    """What parking.decide does for a child that ran ``ran_for_s`` before failing."""
    b.failed_after(ran_for_s)
    return b.delay(rand)


def test_backoff_grows_exponentially_and_caps() -> None:
    b = _restart(initial=0.5, cap=4.0, mult=2.0, jitter=0.0, reset_after_s=60.0)
    delays = [_next(b, ran_for_s=0.1, rand=0.5) for _ in range(6)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_backoff_resets_after_a_stable_run() -> None:
    b = _restart(initial=1.0, cap=30.0, mult=3.0, jitter=0.0, reset_after_s=10.0)
    assert [_next(b, 0.0, 0.0) for _ in range(3)] == [1.0, 3.0, 9.0]
    # Ran 9.9 s: not stable yet, the sequence continues.
    assert _next(b, 9.9, 0.0) == 27.0
    # Ran 10 s: stable, back to the initial delay.
    assert _next(b, 10.0, 0.0) == 1.0
    assert _next(b, 0.0, 0.0) == 3.0


def test_jitter_only_shortens_and_spreads() -> None:
    b = _restart(initial=2.0, cap=2.0, mult=2.0, jitter=0.25, reset_after_s=60.0)
    assert _next(b, 0.0, 0.0) == 2.0
    assert _next(b, 0.0, 0.999) == pytest.approx(2.0 * (1 - 0.25 * 0.999))
    assert _next(b, 0.0, 0.5) == pytest.approx(1.75)


@given(
    initial=st.floats(0.001, 10.0),
    cap=st.floats(0.001, 100.0),
    mult=st.floats(1.0, 10.0),
    jitter=st.floats(0.0, 1.0),
    rands=st.lists(st.floats(0.0, 0.999999), min_size=1, max_size=200),
)
def test_backoff_never_exceeds_cap_and_is_never_negative(
    initial: float, cap: float, mult: float, jitter: float, rands: list[float]
) -> None:
    b = _restart(initial, cap, mult, jitter, reset_after_s=1e9)
    for r in rands:
        d = _next(b, 0.0, r)
        assert 0.0 <= d <= max(cap, 0.0) + 1e-12


def test_intensity_allows_max_restarts_in_the_window_then_refuses() -> None:
    i = Intensity(max_restarts=3, period_s=10.0)
    assert [i.allow(t) for t in (0.0, 1.0, 2.0)] == [True, True, True]
    assert i.allow(3.0) is False
    assert i.used(3.0) == 3
    # The first restart leaves the window at t=10: room for one more.
    assert i.allow(10.0) is True
    assert i.allow(10.5) is False


def test_zero_intensity_escalates_on_the_first_failure() -> None:
    assert Intensity(0, 5.0).allow(0.0) is False


def test_strategy_groups() -> None:
    order = ["bus", "writer", "orderbook", "connector"]
    assert restart_group("one_for_one", order, "writer") == ["writer"]
    assert restart_group("rest_for_one", order, "writer") == ["writer", "orderbook", "connector"]
    assert restart_group("rest_for_one", order, "connector") == ["connector"]
    assert restart_group("one_for_all", order, "orderbook") == order


@pytest.mark.parametrize(
    ("restart", "abnormal", "expected"),
    [
        ("permanent", False, True),
        ("permanent", True, True),
        ("transient", False, False),
        ("transient", True, True),
        ("temporary", True, False),
        ("temporary", False, False),
    ],
)
def test_restart_types(restart: str, abnormal: bool, expected: bool) -> None:
    assert should_restart(restart, abnormal) is expected  # type: ignore[arg-type]
