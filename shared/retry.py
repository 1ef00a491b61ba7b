"""The one retry policy for I/O: how long to wait after a failure, when to give up, whom to tell.

:class:`~shared.backoff.Backoff` is the pure delay arithmetic shared by every state machine;
this module puts it to work around an operation that does I/O (a REST request, a database
write, a discovery round, a reconnect):

- a *classification hook* says what a failure is: retry it (a :class:`Retry` naming the
  reason, the label its counter and log carry, and optionally a fixed delay that replaces the
  backoff, e.g. a refused key waits ``auth_backoff_s``) or re-raise it at once (``None``: a
  bug, bad data, a 404);
- the policy gives up after ``max_attempts`` attempts or once ``deadline_s`` has passed since
  the first failure of the streak, raising :class:`GaveUp` from the last error;
- ``on_retry`` hears about every retry with a :class:`RetryEvent` (the caller counts and logs:
  metrics and loggers are the shell's); ``event.first`` is true once per *streak* (the run of
  failures between two successes), so "the database is failing" is said once, not per try.

Pure where it can be: sleep, clock and the uniform draw are injected, so tests drive it with
a fake clock and a seeded rng. Loops that are timetables rather than "try until it works"
(the poller's discovery, the connector's reconnect) use :meth:`RetryPolicy.next_delay`,
:meth:`RetryPolicy.pause` and :meth:`RetryPolicy.succeeded` directly.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from shared.backoff import Backoff

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Retry:
    """The verdict "retry this": ``reason`` labels the counter and the log line;
    ``delay_s`` (when set) is the wait instead of the backoff's next delay."""

    reason: str
    delay_s: float | None = None


@dataclass(frozen=True, slots=True)
class RetryEvent:
    """One retry about to happen: the ``attempt`` that failed (1-based within the streak),
    the wait before the next one, and whether this failure starts a streak."""

    reason: str
    attempt: int
    delay_s: float
    error: BaseException | None
    first: bool


class GaveUp(Exception):
    """The policy ran out of attempts or time; ``__cause__`` is the last error."""

    def __init__(self, reason: str, attempts: int, last: BaseException | None) -> None:
        super().__init__(f"gave up after {attempts} attempts ({reason})")
        self.reason = reason
        self.attempts = attempts
        self.last = last


Classify = Callable[[BaseException], Retry | None]
OnRetry = Callable[[RetryEvent], Awaitable[None] | None]


class RetryPolicy:
    """A :class:`Backoff` plus the limits of one retry streak.

    ``max_attempts`` counts attempts (the first try included), None = forever; ``deadline_s``
    bounds the time from the streak's first failure, None = no bound. ``draw`` replaces the
    backoff's own rng (uniform in [0, 1)), for callers that keep one.
    """

    def __init__(
        self,
        backoff: Backoff,
        *,
        max_attempts: int | None = None,
        deadline_s: float | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        draw: Callable[[], float] | None = None,
    ) -> None:
        if max_attempts is not None and max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {max_attempts}")
        self.backoff = backoff
        self.max_attempts = max_attempts
        self.deadline_s = deadline_s
        self.sleep = sleep
        self._clock = clock
        self._draw = draw
        #: Failures in the current streak (0 = the last attempt succeeded).
        self.failures = 0
        self._streak_since: float | None = None

    def next_delay(self, retry: Retry | None = None) -> float:
        """Count a failure and return the wait before the next attempt."""
        if self.failures == 0:
            self._streak_since = self._clock()
        self.failures += 1
        if retry is not None and retry.delay_s is not None:
            return retry.delay_s
        return self.backoff.delay(None if self._draw is None else self._draw())

    def exhausted(self) -> bool:
        """Called on a failure not yet counted: True when it was the last attempt allowed
        (``max_attempts`` reached, or ``deadline_s`` past since the streak's first failure)."""
        if self.max_attempts is not None and self.failures + 1 >= self.max_attempts:
            return True
        if self.deadline_s is not None and self._streak_since is not None:
            return self._clock() - self._streak_since >= self.deadline_s
        return False

    async def pause(self, retry: Retry | None = None) -> float:
        """Count a failure and sleep its delay; returns the delay slept."""
        delay = self.next_delay(retry)
        await self.sleep(delay)
        return delay

    def succeeded(self) -> None:
        """The attempt worked: the streak ends and the backoff starts again from ``initial``."""
        self.failures = 0
        self._streak_since = None
        self.backoff.reset()

    def gave_up(self) -> int:
        """End a streak that failed for good; returns how many attempts it made."""
        attempts = self.failures + 1
        self.succeeded()
        return attempts


async def retrying(
    op: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    classify: Classify,
    on_retry: OnRetry | None = None,
) -> T:
    """Run ``op`` until it returns, retrying what ``classify`` calls retryable.

    Not retryable: the error propagates unchanged. Out of attempts or time: :class:`GaveUp`
    from the last error. Each retry is announced to ``on_retry`` (awaited if it is a
    coroutine function's result) before the sleep.
    """
    while True:
        try:
            result = await op()
        except Exception as exc:
            verdict = classify(exc)
            if verdict is None:
                raise
            if policy.exhausted():
                raise GaveUp(verdict.reason, policy.gave_up(), exc) from exc
            first = policy.failures == 0
            delay = policy.next_delay(verdict)
            if on_retry is not None:
                note = on_retry(RetryEvent(verdict.reason, policy.failures, delay, exc, first))
                if inspect.isawaitable(note):
                    await note
            await policy.sleep(delay)
            continue
        policy.succeeded()
        return result
