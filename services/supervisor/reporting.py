"""What the supervisor says about its children: log lines, Prometheus metrics, recent events,
``wevent.<worker>`` messages on the bus. No decisions (the core's) and no processes (the shell's)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import Counter, Gauge

from services.supervisor.happenings import Note
from services.supervisor.model import Child, SupervisorEvent
from shared.messages import WorkerEvent

WORKER_UP = Gauge("kxfeed_worker_up", "1 while the supervised worker runs and has reported ready", ["worker"])
WORKER_RESTARTS = Counter(
    "kxfeed_worker_restarts_total", "Restarts of a supervised worker, by reason", ["worker", "reason"]
)
WORKER_UPTIME = Gauge(
    "kxfeed_worker_uptime_seconds", "Seconds since the supervised worker was started", ["worker"]
)
WORKER_EXIT = Gauge(
    "kxfeed_worker_last_exit_code",
    "Exit code of the worker's last exit (negative: killed by that signal)",
    ["worker"],
)
WORKER_HB_AGE = Gauge(
    "kxfeed_worker_heartbeat_age_seconds", "Seconds since the supervised worker's last heartbeat", ["worker"]
)
WORKER_PARKED = Gauge("kxfeed_worker_parked", "1 while the supervised worker is parked", ["worker"])
ESCALATIONS = Counter(
    "kxfeed_supervisor_escalations_total",
    "Times the restart intensity was exceeded and the supervisor gave up",
)
PARKED_TOTAL = Counter(
    "kxfeed_supervisor_parked_total",
    "Times a worker exceeded its restart intensity and was parked (restarted with the park backoff)",
    ["worker"],
)
PARKED_WORKERS = Gauge("kxfeed_supervisor_parked_workers", "Workers parked now")
CONFIG_ERRORS = Counter(
    "kxfeed_supervisor_config_errors_total",
    "Workers that exited on a configuration error (the supervisor stops instead of restarting)",
    ["worker"],
)

_PER_WORKER = (WORKER_UP, WORKER_UPTIME, WORKER_HB_AGE, WORKER_EXIT, WORKER_PARKED)
_WARN_EVENTS = frozenset({"watchdog", "ready_timeout", "killed", "spawn_failed", "not_restarted", "parked"})
#: What the supervisor logs when it stops everything, by its exit code (1: intensity, 2: config).
_ESCALATION_LINES = {
    1: "restart intensity exceeded: stopping everything",
    2: "a worker cannot run with this configuration: stopping everything",
}


class Reporter:
    def __init__(
        self, log: logging.Logger, own_id: str, publish: Callable[[WorkerEvent], None], keep: int = 50
    ) -> None:
        self.log = log
        self.own_id = own_id
        self.publish = publish
        self.recent: deque[dict[str, Any]] = deque(maxlen=keep)
        self._known: set[str] = set()

    def record(self, e: SupervisorEvent) -> None:
        ctx: dict[str, Any] = {"worker": e.worker}
        if e.pid:
            ctx["pid"] = e.pid
        if e.exit_code is not None:
            ctx["exit_code"] = e.exit_code
        if e.reason:
            ctx["reason"] = e.reason
        if e.detail:
            ctx["detail"] = e.detail
        self._log(e, ctx)
        if e.event == "escalated" and e.exit_code == 1:
            ESCALATIONS.inc()
        elif e.event == "config_error":
            CONFIG_ERRORS.labels(e.worker).inc()
        elif e.event == "restart":
            WORKER_RESTARTS.labels(e.worker, e.reason).inc()
        elif e.event == "parked":
            PARKED_TOTAL.labels(e.worker).inc()
        elif e.event == "exited" and e.exit_code is not None:
            WORKER_EXIT.labels(e.worker).set(e.exit_code)
        self.recent.append(
            {"ts": time.time(), **{k: v for k, v in ctx.items() if k != "pid"}, "event": e.event}
        )
        detail = f"{e.reason}: {e.detail}" if e.reason and e.detail else e.reason or e.detail
        self.publish(
            WorkerEvent(
                worker=e.worker,
                event=e.event,
                pid=e.pid,
                exit_code=e.exit_code,
                detail=detail,
                ts_recv=time.time_ns(),
            )
        )

    def note(self, n: Note) -> None:
        """Something a worker counted and logged itself (a gap, an outage): only shown in the
        recent events, so it is not logged, counted or published a second time."""
        self.recent.append(n.as_event(time.time()))

    def _log(self, e: SupervisorEvent, ctx: dict[str, Any]) -> None:
        extra = {"ctx": ctx}
        if e.event == "escalated":
            self.log.error(_ESCALATION_LINES.get(e.exit_code or 1, "stopping everything"), extra=extra)
        elif e.event == "config_error":
            self.log.error("child config error", extra=extra)
        elif e.event == "exited" and e.reason in ("crash", "killed", "exit", "config"):
            self.log.warning("child exited", extra=extra)
        elif e.event in _WARN_EVENTS:
            self.log.warning(f"child {e.event}", extra=extra)
        elif e.worker == self.own_id:
            self.log.info(e.event, extra=extra)
        else:
            self.log.info(f"child {e.event}", extra=extra)

    def sync(self, children: Mapping[str, Child], now: float) -> None:
        """Per-worker gauges from the children's state (and none left for removed ones)."""
        names = set(children)
        for gone in self._known - names:
            for gauge in _PER_WORKER:
                with contextlib.suppress(KeyError):  # never had that label: nothing to remove
                    gauge.remove(gone)
        self._known = names
        PARKED_WORKERS.set(sum(1 for c in children.values() if c.parked))
        for name, c in children.items():
            WORKER_PARKED.labels(name).set(1 if c.parked else 0)
            WORKER_UP.labels(name).set(1 if c.state == "running" else 0)
            WORKER_UPTIME.labels(name).set(now - c.started_at if c.alive else 0)
            if c.alive and c.last_hb is not None:
                WORKER_HB_AGE.labels(name).set(now - c.last_hb)
