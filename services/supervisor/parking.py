"""What a child's failure leads to, pure: a restart after its backoff, parking, or giving up.

Restart intensity is counted per child (:class:`~.policy.Intensity` in each
:class:`~.model.Child`), so one flapping child never uses up the others' budget. A child
over it is parked (``on_intensity = "park"``): every later restart waits for the park
backoff, while the other children keep running; a parked child that has run one intensity
period without failing is unparked. With ``on_intensity = "exit"`` the supervisor gives up.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Literal

from services.supervisor.model import Child, ChildSpec
from services.supervisor.policy import (
    Intensity,
    PolicySettings,
    park_backoff,
    restart_backoff,
    should_restart,
)


def new_child(spec: ChildSpec, s: PolicySettings, rng: random.Random, **kw: Any) -> Child:
    """A child record with its own restart backoff, restart budget and park pacing."""
    return Child(
        spec, restart_backoff(s, rng), Intensity(s.max_restarts, s.period_s), park_backoff(s, rng), **kw
    )


@dataclass(frozen=True)
class Decision:
    #: down: not restarted (its restart type); exit: stop everything; restart / park: after ``delay``.
    action: Literal["down", "exit", "restart", "park"]
    delay: float = 0.0
    detail: str = ""


def decide(
    c: Child, reason: str, *, abnormal: bool, now: float, settings: PolicySettings, rng: random.Random
) -> Decision:
    """The fate of ``c`` after a failure (``reason``); counts it against ``c``'s intensity."""
    if not should_restart(c.spec.restart, abnormal):
        return Decision("down", detail=f"{c.spec.restart} child, {reason}")
    if c.parked:
        return Decision("restart", c.park.delay())
    if c.intensity.allow(now):
        c.backoff.failed_after(now - c.started_at)
        return Decision("restart", c.backoff.delay(rng.random()))
    over = f"more than {settings.max_restarts} restarts in {settings.period_s:g}s"
    if settings.on_intensity == "exit":
        return Decision("exit", detail=f"{c.spec.name} failed ({reason}): {over}")
    c.parked = True
    c.parked_times += 1
    delay = c.park.delay()
    return Decision("park", delay, f"{over}; next start in {delay:.1f}s")


def stable_for(c: Child, now: float, period_s: float) -> float | None:
    """How long a parked child has run, once that is a whole intensity period (else None)."""
    if not c.parked or c.state != "running" or c.ready_at is None:
        return None
    ran = now - c.ready_at
    return ran if ran >= period_s else None


def unpark(c: Child) -> None:
    c.parked = False
    c.park.reset()
    c.intensity.clear()
