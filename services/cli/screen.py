"""Human views of the supervisor's status: the ``kxfeed status`` table and ``kxfeed up``'s live screen.

Pure formatting of the ``status`` control reply (plain dicts), so the CLI and the live
view print the same thing and tests need no terminal.
"""

from __future__ import annotations

import time
from typing import Any

from shared.control import MESSAGE_COUNTERS

#: States in which a worker's counters are its live ones.
_ALIVE = frozenset({"starting", "running", "stopping"})
#: One entry per column (and the states), joined and wrapped under the table.
LEGEND = (
    "PID process id",
    "UPTIME since start",
    "RESTARTS since kxfeed up",
    "HB AGE since last heartbeat",
    "MSG/S messages/s (n/a: counts none)",
    "LAST EXIT code (<0: signal)",
    "-: none / not running",
    "backoff, parked Ns: restart in N s",
    "held: stopped (kxfeed stop)",
)
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


def _messages(row: dict[str, Any]) -> str:
    if row["messages_per_s"] is not None:
        return _rate(row["messages_per_s"])
    counters = row.get("counters") or {}
    if row["state"] in _ALIVE and counters and not any(k in counters for k in MESSAGE_COUNTERS):
        return "n/a"  # running, but it counts no messages (the bus, the arb...): not a stall
    return "-"


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
                _messages(w),
                "-" if exit_code is None else str(exit_code),
            )
        )
    return out


def table(status: dict[str, Any]) -> list[str]:
    body = rows(status)
    widths = [max(len(r[i]) for r in [COLUMNS, *body]) for i in range(len(COLUMNS))]
    right = {1, 3, 4, 5, 6, 7}  # numbers and "-" line up on the right

    def fmt(r: tuple[str, ...]) -> str:
        cells = [c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(r)]
        return "  ".join(cells).rstrip()

    return [fmt(COLUMNS), *(fmt(r) for r in body)]


def headline(status: dict[str, Any], width: int | None = None) -> str:
    """The first line; when it does not fit ``width`` the least useful parts go first."""
    sup = status["supervisor"]
    workers = status["workers"]
    running = sum(1 for w in workers if w["state"] == "running")
    state = "shutting down" if sup["shutting_down"] else "running"
    parked = sup.get("parked") or []
    held = [w["worker"] for w in workers if w["state"] == "held"]
    head = [f"kxfeed supervisor pid {sup['pid']} {state}", f"{running}/{len(workers)} workers ready"]
    tail = [f"PARKED: {', '.join(parked)}"] * bool(parked) + [f"HELD: {', '.join(held)}"] * bool(held)
    budget = f"restarts {sup['restarts_in_window']}/{sup['max_restarts']} per {sup['period_s']:g}s"
    line = " · ".join([*head, sup["strategy"], budget, *tail])
    if width is None:
        return line
    for middle in ([budget], []):
        if len(line) <= width:
            return line
        line = " · ".join(head + middle + tail)
    return _fit(line, width)


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _counters(w: dict[str, Any]) -> str:
    counters = w.get("counters") or {}
    rates = w.get("rates") or {}
    # Only message counters get a rate: other counters may be gauges (books, lag).
    return " ".join(
        f"{k}={v}" + (f" ({_rate(rates[k])}/s)" if k in rates and k in MESSAGE_COUNTERS else "")
        for k, v in sorted(counters.items())
    )


def worker_line(w: dict[str, Any]) -> str | None:
    """A worker's live counters; for one that is not running, what it is waiting for instead."""
    name, state = w["worker"], w["state"]
    if state == "held":
        return f"  {name}: held, stopped by operator (kxfeed restart {name} starts it)"
    if state == "parked":
        retry = f", retry in {w['restart_in_s']:.0f}s" if w.get("restart_in_s") else ""
        return f"  {name}: parked{retry} (over its restart budget)"
    counters = _counters(w)
    if state in _ALIVE:
        return f"  {name}: {counters}" if counters else None
    # Exited: what it counted last, marked as such (its rates are gone with the process).
    return f"  {name} (exited): {counters}" if counters else f"  {name}: {state}"


def counter_lines(status: dict[str, Any], width: int) -> list[str]:
    """Each worker's heartbeat counters (gaps, books valid/invalid, writer lag...), one line each."""
    return [_fit(line, width) for w in status["workers"] if (line := worker_line(w)) is not None]


def legend(width: int) -> list[str]:
    """The columns' legend, wrapped at ``width`` between entries."""
    out: list[str] = []
    line = ""
    for item in LEGEND:
        candidate = f"{line} · {item}" if line else item
        if line and len(candidate) > width:
            out.append(line)
            line = item
        else:
            line = candidate
    return [_fit(x, width) for x in [*out, line]]


def _sum(status: dict[str, Any], marker: str, key: str, rates: bool = False) -> float | None:
    """``key`` summed over the running workers that count ``marker`` (None: no such worker)."""
    found = [w for w in status["workers"] if w["state"] in _ALIVE and marker in (w.get("counters") or {})]
    if not found:
        return None
    return sum(float((w.get("rates" if rates else "counters") or {}).get(key, 0)) for w in found)


def market_line(status: dict[str, Any]) -> str:
    """Books valid/total, deltas/s (the order book's), rows/s (the writer's), the latest signal."""
    books = _sum(status, "deltas_applied", "books")
    valid = _sum(status, "deltas_applied", "valid")
    deltas = _sum(status, "deltas_applied", "deltas_applied", rates=True)
    stored = _sum(status, "db_up", "rows", rates=True)
    parts = [
        "books -" if books is None else f"books {valid or 0:.0f}/{books:.0f} valid",
        f"{'-' if deltas is None else _rate(deltas)} deltas/s",
        f"{'-' if stored is None else _rate(stored)} rows/s",
    ]
    sig = status.get("signal")
    if sig:
        when = time.strftime("%H:%M:%S ", time.localtime(sig["ts"])) if sig.get("ts") else ""
        # Edge first: a narrow terminal cuts the ticker's tail, not the number that matters.
        parts.append(
            f"signal {when}{sig['strategy']} edge {sig['edge']}: "
            f"{sig['side']} {sig['ticker']} @{sig['price']} x{sig['size']}"
        )
    else:
        parts.append("no signal yet")
    return "market: " + " · ".join(parts)


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


def live_screen(status: dict[str, Any], width: int = 100, events: int = 8, log_dir: str = "") -> list[str]:
    """The compact screen ``kxfeed up`` redraws in place."""
    lines = [headline(status, width), _fit(market_line(status), width), "", *table(status)]
    lines += legend(width)
    counters = counter_lines(status, width)
    if counters:
        lines += ["", "counters:", *counters]
    recent = status.get("events", [])[-events:]
    if recent:
        lines += ["", "recent:"]
        lines += [_fit("  " + event_line(e), width) for e in recent]
    footer = "Ctrl-C stops every worker (producers first, the bus last)"
    if log_dir:
        footer = f"logs: {log_dir}/   " + footer
    lines += ["", footer[:width]]
    return lines
