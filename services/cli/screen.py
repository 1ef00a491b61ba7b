"""Human views of the supervisor's status: the ``kxfeed status`` table and ``kxfeed up``'s live screen.

Pure formatting of the ``status`` control reply (plain dicts), so the CLI and the live
view print the same thing and tests need no terminal.
"""

from __future__ import annotations

import time
from typing import Any

from shared.control import MESSAGE_COUNTERS

COLUMNS = ("WORKER", "PID", "STATE", "UPTIME", "RESTARTS", "HB AGE", "MSG/S", "LAST EXIT")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def _rate(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _state(row: dict[str, Any]) -> str:
    state = str(row["state"])
    if state == "parked":
        # Over its restart intensity: it waits out the long park backoff.
        return f"parked {row['restart_in_s']:.0f}s" if row.get("restart_in_s") else "parked"
    if state == "pending" and row.get("restart_in_s"):
        return f"backoff {row['restart_in_s']:.1f}s"
    if row.get("parked"):
        return f"{state} (parked)"
    return state


def rows(status: dict[str, Any]) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for w in status["workers"]:
        exit_code = w.get("last_exit_code")
        out.append(
            (
                str(w["worker"]),
                str(w["pid"] or "-"),
                _state(w),
                duration(w["uptime_s"]),
                str(w["restarts"]),
                duration(w["heartbeat_age_s"]),
                _rate(w["messages_per_s"]),
                "-" if exit_code is None else str(exit_code),
            )
        )
    return out


def table(status: dict[str, Any]) -> list[str]:
    body = rows(status)
    widths = [max(len(r[i]) for r in [COLUMNS, *body]) for i in range(len(COLUMNS))]
    right = {1, 4, 5, 6, 7}

    def fmt(r: tuple[str, ...]) -> str:
        cells = [c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(r)]
        return "  ".join(cells).rstrip()

    return [fmt(COLUMNS), *(fmt(r) for r in body)]


def headline(status: dict[str, Any]) -> str:
    sup = status["supervisor"]
    workers = status["workers"]
    running = sum(1 for w in workers if w["state"] == "running")
    state = "shutting down" if sup["shutting_down"] else "running"
    parked = sup.get("parked") or []
    return (
        f"kxfeed supervisor pid {sup['pid']} {state} · {running}/{len(workers)} workers ready · "
        f"{sup['strategy']} · restarts {sup['restarts_in_window']}/{sup['max_restarts']} "
        f"per {sup['period_s']:g}s per worker" + (f" · PARKED: {', '.join(parked)}" if parked else "")
    )


def counter_lines(status: dict[str, Any], width: int) -> list[str]:
    """Each worker's heartbeat counters (gaps, books valid/invalid, writer lag...), one line each."""
    out = []
    for w in status["workers"]:
        counters = w.get("counters") or {}
        rates = w.get("rates") or {}
        if counters:
            # Only message counters get a rate: other counters may be gauges (books, lag).
            cells = [
                f"{k}={v}" + (f" ({_rate(rates[k])}/s)" if k in rates and k in MESSAGE_COUNTERS else "")
                for k, v in sorted(counters.items())
            ]
            text = f"  {w['worker']}: " + " ".join(cells)
            out.append(text if len(text) <= width else text[: width - 1] + "…")
    return out


def event_line(event: dict[str, Any]) -> str:
    ts = time.strftime("%H:%M:%S", time.localtime(event["ts"]))
    parts = [ts, event["worker"], event["event"]]
    if event.get("reason"):
        parts.append(f"({event['reason']})")
    if event.get("exit_code") is not None:
        parts.append(f"code={event['exit_code']}")
    if event.get("detail"):
        parts.append(event["detail"])
    return " ".join(parts)


def live_screen(status: dict[str, Any], width: int = 100, events: int = 6, log_dir: str = "") -> list[str]:
    """The compact screen ``kxfeed up`` redraws in place."""
    lines = [headline(status)[:width], "", *table(status)]
    counters = counter_lines(status, width)
    if counters:
        lines += ["", "counters:", *counters]
    recent = status.get("events", [])[-events:]
    if recent:
        lines += ["", "recent:"]
        lines += [("  " + event_line(e))[:width] for e in recent]
    footer = "Ctrl-C stops every worker (producers first, the bus last)"
    if log_dir:
        footer = f"logs: {log_dir}/   " + footer
    lines += ["", footer[:width]]
    return lines
