"""The watchdog's verdict on one child, pure: stuck starting, or silent for too long."""

from __future__ import annotations

from services.supervisor.model import Child


def overdue(c: Child, bus: Child | None, now: float) -> tuple[str, str] | None:
    """``(reason, detail)`` if ``c`` must be stopped now, else None.

    ``reason`` is ``"ready_timeout"`` or ``"watchdog"``; ``bus`` is the transport child
    (None when there is none).
    """
    if c.state == "starting" and now - c.started_at > c.spec.ready_timeout_s:
        return "ready_timeout", f"not ready after {c.spec.ready_timeout_s}s"
    if c.state != "running" or not c.spec.heartbeat:
        return None
    baseline = c.last_seen()
    timeout = c.spec.heartbeat_timeout_s
    if bus is not None and bus is not c and bus.spec.heartbeat:
        # Every heartbeat travels through the bus: when the bus is silent too, it is the
        # bus that is stuck (its own watchdog handles it), not this child.
        if bus.state != "running" or now - bus.last_seen() > timeout / 2:
            return None
        baseline = max(baseline, bus.ready_at or baseline)
    age = now - baseline
    if age > timeout:
        return "watchdog", f"no heartbeat for {age:.1f}s (timeout {timeout}s)"
    return None
