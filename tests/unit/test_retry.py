"""The one retry policy for I/O (shared/retry.py), driven by a fake clock and a seeded rng."""

from __future__ import annotations

import asyncio
import random

import pytest

from shared.backoff import Backoff
from shared.retry import GaveUp, Retry, RetryEvent, RetryPolicy, retrying
from tests.support.fakeclock import FakeClock


def policy(clock: FakeClock, seed: int = 1, **kw: object) -> RetryPolicy:
    return RetryPolicy(
        Backoff(0.25, 4.0, rng=random.Random(seed)),
        sleep=clock.sleep,
        clock=clock,
        **kw,  # type: ignore[arg-type]
    )


class Flaky:
    """Fails with each error of ``errors`` in turn, then returns ``"ok"``."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def transient(exc: BaseException) -> Retry | None:
    return Retry("io") if isinstance(exc, OSError) else None


def test_retries_until_success_with_the_seeded_backoffs_delays() -> None:
    clock = FakeClock()
    op = Flaky(OSError("a"), OSError("b"), OSError("c"))
    assert asyncio.run(retrying(op, policy(clock, seed=7), transient)) == "ok"
    assert op.calls == 4
    same = Backoff(0.25, 4.0, rng=random.Random(7))
    assert clock.sleeps == [same.delay() for _ in range(3)]


def test_not_retryable_is_raised_at_once_unchanged() -> None:
    clock = FakeClock()
    op = Flaky(OSError("a"), ValueError("bug"))
    with pytest.raises(ValueError, match="bug"):
        asyncio.run(retrying(op, policy(clock), transient))
    assert op.calls == 2 and len(clock.sleeps) == 1


def test_gives_up_after_max_attempts_from_the_last_error() -> None:
    clock = FakeClock()
    p = policy(clock, max_attempts=3)
    op = Flaky(*(OSError(str(i)) for i in range(10)))
    with pytest.raises(GaveUp) as info:
        asyncio.run(retrying(op, p, transient))
    assert op.calls == 3 and len(clock.sleeps) == 2
    assert info.value.attempts == 3 and info.value.reason == "io"
    assert str(info.value.__cause__) == "2"
    assert p.failures == 0, "the streak is over: the policy can be used again"


def test_gives_up_once_the_deadline_has_passed_since_the_first_failure() -> None:
    clock = FakeClock()
    p = RetryPolicy(Backoff(1.0, 1.0, jitter=0.0), deadline_s=3.5, sleep=clock.sleep, clock=clock)
    op = Flaky(*(OSError(str(i)) for i in range(10)))
    with pytest.raises(GaveUp):
        asyncio.run(retrying(op, p, transient))
    # Failures at t=0,1,2,3 sleep; at t=4 the 3.5 s since the first failure are past.
    assert clock.sleeps == [1.0, 1.0, 1.0, 1.0] and op.calls == 5


def test_a_verdict_may_fix_its_own_delay() -> None:
    clock = FakeClock()
    refused = lambda exc: Retry("auth", delay_s=9.0)  # noqa: E731
    asyncio.run(retrying(Flaky(OSError("401")), policy(clock), refused))
    assert clock.sleeps == [9.0]


def test_on_retry_hears_each_retry_and_first_once_per_streak() -> None:
    clock = FakeClock()
    p = policy(clock)
    heard: list[RetryEvent] = []
    asyncio.run(retrying(Flaky(OSError("a"), OSError("b")), p, transient, heard.append))
    asyncio.run(retrying(Flaky(OSError("c")), p, transient, heard.append))
    assert [(e.attempt, e.first, str(e.error)) for e in heard] == [
        (1, True, "a"),
        (2, False, "b"),
        (1, True, "c"),
    ]
    assert [e.delay_s for e in heard] == clock.sleeps


def test_on_retry_may_be_async() -> None:
    clock = FakeClock()
    done: list[int] = []

    async def note(e: RetryEvent) -> None:
        await asyncio.sleep(0)
        done.append(e.attempt)

    asyncio.run(retrying(Flaky(OSError("a")), policy(clock), transient, note))
    assert done == [1]


def test_success_resets_the_backoff_to_initial() -> None:
    clock = FakeClock()
    p = RetryPolicy(Backoff(1.0, 8.0, jitter=0.0), sleep=clock.sleep, clock=clock)
    assert [p.next_delay() for _ in range(3)] == [1.0, 2.0, 4.0]
    p.succeeded()
    assert p.next_delay() == 1.0


def test_an_injected_draw_replaces_the_rng() -> None:
    clock = FakeClock()
    p = RetryPolicy(Backoff(2.0, 8.0), sleep=clock.sleep, clock=clock, draw=lambda: 0.25)
    assert p.next_delay() == 1.5


def test_max_attempts_must_allow_one() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(Backoff(), max_attempts=0)
