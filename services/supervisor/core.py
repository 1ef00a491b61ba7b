"""The supervisor's state machine, pure: fed with ``now`` and what happened, it says what to do.

Inputs: :meth:`SupervisorCore.tick`, ``spawned`` / ``spawn_failed`` / ``exited`` (processes),
``heartbeat`` / ``probe_ok`` (liveness), ``restart`` / ``stop_child`` / ``shutdown`` /
``reload`` (operators). Outputs, collected with :meth:`SupervisorCore.take`: actions
(:class:`~.model.Spawn`, :class:`~.model.Kill`) for the shell to carry out, and
:class:`~.model.Event` records to log, count and publish. No processes, sockets or clocks here.

Child states: pending (waiting for its start: backoff, or an earlier child not ready yet)
-> starting (spawned, not ready) -> running (ready) -> stopping (signalled) -> pending
again, or down (not restarted: temporary, transient after a clean exit, stopped by the
operator, or shutting down).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from services.supervisor.model import Action, Child, ChildSpec, Event, Kill, Spawn, StopSequence, exit_reason
from services.supervisor.policy import Backoff, Intensity, PolicySettings, restart_group, should_restart
from services.supervisor.status import status_rows
from services.supervisor.watchdog import overdue

__all__ = ["TRANSPORT", "SupervisorCore"]

#: The child every other child's heartbeats travel through.
TRANSPORT = "bus"
#: Stop reasons after which the child comes back without counting as a failure.
_RESTART_AFTER_STOP = frozenset({"sibling", "manual", "reload"})
#: Stop reasons that are themselves failures (restart with backoff, count intensity).
_FAILURE_STOPS = frozenset({"watchdog", "ready_timeout"})


class SupervisorCore:
    def __init__(
        self,
        specs: Sequence[ChildSpec],
        settings: PolicySettings,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.rng = rng or random.Random()
        self.intensity = Intensity(settings.max_restarts, settings.period_s)
        self.order: list[str] = [s.name for s in specs]
        if len(set(self.order)) != len(self.order):
            raise ValueError(f"duplicate child names in {self.order}")
        self.children: dict[str, Child] = {s.name: Child(s, Backoff.from_settings(settings)) for s in specs}
        self.shutting_down = False
        self.exit_code = 0
        self.stop_cause = ""
        self._group = 0
        self._sequences: list[StopSequence] = []
        self._actions: list[Action] = []
        self._events: list[Event] = []

    # ---- outputs ---------------------------------------------------------------------------
    def take(self) -> tuple[list[Action], list[Event]]:
        actions, events = self._actions, self._events
        self._actions, self._events = [], []
        return actions, events

    def _event(self, child: str, event: str, detail: str = "", **kw: Any) -> None:
        self._events.append(Event(child, event, detail, **kw))

    @property
    def done(self) -> bool:
        """Shutting down and every child has exited: the supervisor may exit."""
        return self.shutting_down and not any(c.alive for c in self.children.values())

    def child(self, name: str) -> Child:
        try:
            return self.children[name]
        except KeyError:
            raise KeyError(f"no child named {name!r}; children: {', '.join(self.order)}") from None

    # ---- process events --------------------------------------------------------------------
    def spawned(self, name: str, pid: int, now: float) -> None:
        c = self.child(name)
        c.pid, c.started_at = pid, now
        c.ready_at = c.last_hb = None
        c.counters, c.rates, c.sample = {}, {}, None
        self._event(name, "spawned", pid=pid)
        if c.spec.ready == "spawn":
            self._mark_ready(c, now)

    def spawn_failed(self, name: str, error: str, now: float) -> None:
        c = self.child(name)
        c.pid = 0
        c.state = "pending"
        self._event(name, "spawn_failed", error, reason="spawn_error")
        self._failure(c, "spawn_error", abnormal=True, now=now)

    def exited(self, name: str, code: int, now: float) -> None:
        c = self.child(name)
        if not c.alive:
            return
        pid, c.pid, c.last_exit = c.pid, 0, code
        was_stopping, stop_reason, doomed = c.state == "stopping", c.stop_reason, c.doomed
        c.doomed = c.stop_reason = ""
        c.ready_at = None
        c.rates, c.sample = {}, None
        reason = stop_reason if was_stopping else exit_reason(code)
        self._event(
            name, "exited", f"after {now - c.started_at:.1f}s", pid=pid, exit_code=code, reason=reason
        )
        if self.shutting_down or c.removed or (was_stopping and stop_reason == "held"):
            c.state = "down"
            return
        if (was_stopping and stop_reason in _RESTART_AFTER_STOP) or doomed:
            # Stopped on purpose to come back (its restart was counted when it was scheduled).
            c.state = "pending"
            c.not_before = now
            return
        c.state = "pending"
        if was_stopping and stop_reason in _FAILURE_STOPS:
            self._failure(c, stop_reason, abnormal=True, now=now)
        else:
            self._failure(c, reason, abnormal=code != 0, now=now)

    # ---- liveness --------------------------------------------------------------------------
    def heartbeat(self, name: str, ready: bool, counters: dict[str, int], now: float) -> None:
        c = self.children.get(name)
        if c is None or c.state not in ("starting", "running"):
            return
        c.last_hb = now
        if c.sample is not None:
            t0, before = c.sample
            dt = now - t0
            if dt > 0:
                c.rates = {
                    k: (v - before[k]) / dt for k, v in counters.items() if k in before and v >= before[k]
                }
        c.sample = (now, dict(counters))
        c.counters = dict(counters)
        if ready and c.state == "starting" and c.spec.ready == "heartbeat":
            self._mark_ready(c, now)

    def probe_ok(self, name: str, now: float) -> None:
        c = self.child(name)
        if c.state == "starting" and c.spec.ready == "control" and c.pid:
            self._mark_ready(c, now)

    def _mark_ready(self, c: Child, now: float) -> None:
        c.state = "running"
        c.ready_at = now
        self._event(c.spec.name, "ready", f"in {now - c.started_at:.2f}s", pid=c.pid)

    def needs_probe(self) -> list[str]:
        return [
            n for n in self.order if (c := self.children[n]).state == "starting" and c.spec.ready == "control"
        ]

    # ---- operators -------------------------------------------------------------------------
    def restart(self, name: str, now: float) -> None:
        """Operator restart: the strategy's group, no backoff, not counted against intensity."""
        c = self.child(name)
        if self.shutting_down:
            raise RuntimeError("shutting down")
        c.held = False
        if c.state == "pending":
            c.not_before = now
            self._count_restart(c, "manual", 0.0)
            return
        if c.state == "down":
            c.state = "pending"
            c.group = self._new_group()
            c.not_before = now
            self._count_restart(c, "manual", 0.0)
            return
        self._restart_group(c, "manual", 0.0, now)

    def stop_child(self, name: str, now: float) -> None:
        """Operator stop: the child stays down until ``restart``."""
        c = self.child(name)
        c.held = True
        if c.state == "pending":
            c.state = "down"
        elif c.alive and c.state != "stopping":
            c.doomed = "held"
            self._sequences.append(StopSequence([name], "held"))
        elif c.state == "stopping":
            c.stop_reason = "held"
        self._event(name, "held", "stopped by operator")

    def shutdown(self, now: float, *, code: int = 0, cause: str = "requested") -> None:
        """Stop every child in reverse start order (producers first, the bus last)."""
        if self.shutting_down:
            return
        self.shutting_down = True
        self.exit_code = code
        self.stop_cause = cause
        reason = "shutdown" if code == 0 else "escalation"
        for c in self.children.values():
            if c.state == "pending":
                c.state = "down"
        # One sequence for everything, so the reverse order holds even for children that
        # were about to be stopped for another reason.
        alive = [n for n in reversed(self.order) if self.children[n].alive]
        self._sequences = [StopSequence(alive, reason)]
        self._event("supervisor", "shutdown" if code == 0 else "escalated", cause, exit_code=code)

    def reload(self, specs: Sequence[ChildSpec], settings: PolicySettings, now: float) -> list[str]:
        """Apply a new config: restart only children whose spec changed; add and remove others.

        Returns the names of the children that will (re)start or stop because of it.
        """
        if self.shutting_down:
            return []
        self.settings = settings
        self.intensity.max_restarts, self.intensity.period_s = settings.max_restarts, settings.period_s
        new_order = [s.name for s in specs]
        if len(set(new_order)) != len(new_order):
            raise ValueError(f"duplicate child names in {new_order}")
        touched: list[str] = []
        group = self._new_group()
        changed: list[str] = []
        for spec in specs:
            c = self.children.get(spec.name)
            if c is None or c.removed:
                self.children[spec.name] = Child(
                    spec, Backoff.from_settings(settings), group=group, not_before=now
                )
                touched.append(spec.name)
                self._event(spec.name, "added", "config reload")
                continue
            c.backoff.retune(settings)
            if c.spec != spec:
                c.spec = spec
                touched.append(spec.name)
                if c.alive:
                    changed.append(spec.name)
                    c.doomed, c.group = "reload", group
                    self._count_restart(c, "reload", 0.0)
                elif c.state == "pending":
                    c.group = group
        removed = [n for n in self.order if n not in new_order]
        for name in removed:
            c = self.children[name]
            c.removed = True
            touched.append(name)
            self._event(name, "removed", "config reload")
            if c.state == "pending":
                c.state = "down"
            elif c.alive and c.state != "stopping":
                c.doomed = "removed"
        stop = [n for n in reversed(self.order) if n in changed or (n in removed and self.children[n].alive)]
        if stop:
            self._sequences.append(StopSequence(stop, "reload"))
        self.order = new_order + [n for n in removed if self.children[n].alive]
        for name in removed:
            if not self.children[name].alive:
                del self.children[name]
        return touched

    # ---- the clock -------------------------------------------------------------------------
    def tick(self, now: float) -> None:
        self._run_sequences(now)
        for name in self.order:
            c = self.children[name]
            if c.state == "stopping" and not c.killed and now >= c.stop_deadline:
                c.killed = True
                self._actions.append(Kill(name, "KILL"))
                self._event(name, "killed", f"no exit {c.spec.shutdown_timeout_s}s after SIGTERM", pid=c.pid)
        if not self.shutting_down:
            self._watchdog(now)
            self._start_eligible(now)
            self._forget_removed()
            if not any(c.alive or c.state == "pending" or c.held for c in self.children.values()):
                self.shutdown(now, cause="no child left to run")

    def _run_sequences(self, now: float) -> None:
        remaining: list[StopSequence] = []
        for seq in self._sequences:
            waiting = False
            for name in seq.names:
                c = self.children.get(name)
                if c is None or not c.alive:
                    continue
                if c.state != "stopping":
                    self._terminate(c, c.doomed or seq.reason, now)
                waiting = True
                break
            if waiting:
                remaining.append(seq)
        self._sequences = remaining

    def _terminate(self, c: Child, reason: str, now: float) -> None:
        if self.shutting_down and reason not in ("shutdown", "escalation"):
            reason = "escalation" if self.exit_code else "shutdown"
        c.state = "stopping"
        c.stop_reason = reason or "shutdown"
        c.stop_deadline = now + c.spec.shutdown_timeout_s
        c.killed = False
        self._actions.append(Kill(c.spec.name, "TERM"))
        self._event(c.spec.name, "stopping", pid=c.pid, reason=c.stop_reason)

    def _watchdog(self, now: float) -> None:
        bus = self.children.get(TRANSPORT)
        for name in self.order:
            c = self.children[name]
            if c.doomed:
                continue
            verdict = overdue(c, bus, now)
            if verdict is not None:
                reason, detail = verdict
                self._event(name, reason, detail, pid=c.pid)
                self._terminate(c, reason, now)

    def _blocked(self, c: Child) -> bool:
        for name in self.order:
            other = self.children[name]
            if other is c:
                break
            if other.state == "starting":
                return True  # readiness gate: one child comes up at a time, in order
            if other.group == c.group and other.state == "pending":
                return True
        return any(
            other.group == c.group and (other.doomed or other.state == "stopping")
            for other in self.children.values()
        )

    def _start_eligible(self, now: float) -> None:
        for name in self.order:
            c = self.children[name]
            if c.state == "pending" and not c.removed and now >= c.not_before and not self._blocked(c):
                c.state = "starting"
                c.started_at = now
                c.pid = 0
                self._actions.append(Spawn(name))

    def _forget_removed(self) -> None:
        gone = [n for n in self.order if self.children[n].removed and not self.children[n].alive]
        for name in gone:
            self.order.remove(name)
            del self.children[name]

    # ---- failures --------------------------------------------------------------------------
    def _new_group(self) -> int:
        self._group += 1
        return self._group

    def _count_restart(self, c: Child, reason: str, delay: float) -> None:
        c.restarts += 1
        self._event(c.spec.name, "restart", f"in {delay:.2f}s", reason=reason)

    def _failure(self, c: Child, reason: str, *, abnormal: bool, now: float) -> None:
        name = c.spec.name
        if not should_restart(c.spec.restart, abnormal):
            c.state = "down"
            self._event(name, "not_restarted", f"{c.spec.restart} child, {reason}", reason=reason)
            return
        if not self.intensity.allow(now):
            c.state = "down"
            s = self.settings
            self.shutdown(
                now,
                code=1,
                cause=f"{name} failed ({reason}): more than {s.max_restarts} restarts in {s.period_s}s",
            )
            return
        delay = c.backoff.next_delay(now - c.started_at, self.rng.random())
        self._restart_group(c, reason, delay, now)

    def _restart_group(self, c: Child, reason: str, delay: float, now: float) -> None:
        group = self._new_group()
        members = restart_group(self.settings.strategy, self.order, c.spec.name)
        for name in members:
            m = self.children[name]
            if m.removed or (m is not c and (m.state == "down" or m.doomed)):
                continue
            m.group = group
            if m is c:
                self._count_restart(m, reason, delay)
                if m.alive:
                    m.doomed = reason
                else:
                    m.not_before = now + delay
                continue
            self._count_restart(m, "sibling", 0.0)
            if m.alive:
                m.doomed = "sibling"
            else:
                m.not_before = max(m.not_before, now)
        stop = [
            n for n in reversed(self.order) if n in members and self.children[n].doomed in (reason, "sibling")
        ]
        stop = [n for n in stop if self.children[n].alive]
        if stop:
            self._sequences.append(StopSequence(stop, "sibling"))

    # ---- reporting -------------------------------------------------------------------------
    def status(self, now: float) -> list[dict[str, Any]]:
        return status_rows(self.order, self.children, now)
