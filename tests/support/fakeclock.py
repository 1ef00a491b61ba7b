"""A monotonic clock for code that takes ``clock`` and ``sleep`` callables: time moves only
when that code sleeps, so backoff and pacing are asserted exactly and run at once."""

from __future__ import annotations


class FakeClock:
    """Call it for the time; pass ``sleep`` as the sleep (every sleep is kept in ``sleeps``)."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s
