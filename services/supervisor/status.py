"""The ``status`` report's rows, pure: one plain dict per child, as the control reply sends them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from services.supervisor.model import Child
from shared.control import MESSAGE_COUNTERS


def _state(c: Child) -> str:
    if c.held and c.state == "down":
        return "held"
    # Parked and waiting out its long backoff; once started it shows starting/running again.
    if c.parked and c.state == "pending":
        return "parked"
    return c.state


def message_rate(rates: dict[str, float]) -> float | None:
    """Messages per second from a worker's heartbeat counter rates (None: no such counter)."""
    for key in MESSAGE_COUNTERS:
        if key in rates:
            return round(rates[key], 3)
    return None


def restarts_in_window(children: Mapping[str, Child], now: float) -> int:
    """The busiest child's restarts in its current intensity window."""
    return max((c.intensity.used(now) for c in children.values()), default=0)


def status_rows(order: Sequence[str], children: Mapping[str, Child], now: float) -> list[dict[str, Any]]:
    rows = []
    for name in order:
        c = children[name]
        rows.append(
            {
                "worker": name,
                "pid": c.pid or None,
                "state": _state(c),
                "uptime_s": round(now - c.started_at, 3) if c.alive else None,
                "restarts": c.restarts,
                "restarts_in_window": c.intensity.used(now),
                "parked": c.parked,
                "heartbeat_age_s": round(now - c.last_hb, 3) if c.alive and c.last_hb is not None else None,
                "messages_per_s": message_rate(c.rates),
                "restart_in_s": round(max(0.0, c.not_before - now), 3) if c.state == "pending" else None,
                "last_exit_code": c.last_exit,
                "restart": c.spec.restart,
                "counters": dict(c.counters),
                "rates": {k: round(v, 3) for k, v in c.rates.items() if v > 0},
            }
        )
    return rows
