"""The supervisor's state machine, pure: fed with ``now`` and what happened, it says what to do.

Inputs: :meth:`SupervisorCore.tick`, ``spawned`` / ``spawn_failed`` / ``exited`` (processes),
``heartbeat`` / ``probe_ok`` (liveness), ``restart`` / ``stop_child`` / ``shutdown`` /
``reload`` (operators). Outputs, collected with :meth:`SupervisorCore.take`: actions
(:class:`~.model.Spawn`, :class:`~.model.Kill`) for the shell to carry out, and
:class:`~.model.SupervisorEvent` records to log, count and publish. No processes, sockets or clocks here.

Child states: pending (waiting for its start: backoff, or an earlier child not ready yet)
-> starting (spawned, not ready) -> running (ready) -> stopping (signalled) -> pending
again, or down (not restarted: temporary, transient after a clean exit, stopped by the
operator, or shutting down).

Restart intensity is per child; one over it is parked or ends the service
(:mod:`~.parking`). A child that exits ``EX_CONFIG`` (a configuration error) is never
restarted: the supervisor stops everything and exits 2 with the child's own message.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from services.supervisor.gate import may_start
from services.supervisor.model import Action, Child, ChildSpec, Kill, Spawn, StopSequence, SupervisorEvent
from services.supervisor.model import describe_exit as describe
from services.supervisor.model import exit_reason as reason_of
from services.supervisor.parking import decide, new_child, stable_for, unpark
from services.supervisor.policy import PolicySettings, restart_group, retune
from services.supervisor.status import status_rows
from services.supervisor.watchdog import overdue
from shared.config import CONFIG_EXIT

__all__ = ["CONFIG_EXIT", "TRANSPORT", "SupervisorCore"]

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
        self.order: list[str] = [s.name for s in specs]
        if len(set(self.order)) != len(self.order):
            raise ValueError(f"duplicate child names in {self.order}")
        self.children: dict[str, Child] = {s.name: new_child(s, self.settings, self.rng) for s in specs}
        self.shutting_down = False
        self.exit_code = 0
        self.stop_cause = ""
        self._group = 0
        self._sequences: list[StopSequence] = []
        self._actions: list[Action] = []
        self._events: list[SupervisorEvent] = []

    # ---- outputs ---------------------------------------------------------------------------
    def take(self) -> tuple[list[Action], list[SupervisorEvent]]:
        actions, events = self._actions, self._events
        self._actions, self._events = [], []
        return actions, events

    def _event(self, child: str, event: str, detail: str = "", **kw: Any) -> None:
        self._events.append(SupervisorEvent(child, event, detail, **kw))

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

    def exited(self, name: str, code: int, now: float, note: str = "") -> None:
        """Child ``name`` exited with return code ``code`` (negative: that signal).

        ``note`` is the child's own last word (its exit note), shown for a config error.
        """
        c = self.child(name)
        if not c.alive:
            return
        pid, c.pid, c.last_exit = c.pid, 0, code
        was_stopping, stop_reason, doomed = c.state == "stopping", c.stop_reason, c.doomed
        c.doomed = c.stop_reason = ""
        c.ready_at = None
        c.rates, c.sample = {}, None
        reason = stop_reason if was_stopping else reason_of(code)
        detail = f"{describe(code)} after {now - c.started_at:.1f}s"
        self._event(name, "exited", detail, pid=pid, exit_code=code, reason=reason)
        if self.shutting_down or c.removed or (was_stopping and stop_reason == "held"):
            c.state = "down"
            return
        if reason_of(code) == "config":
            # A restart cannot fix a bad setting or a missing key: say so and stop, not loop.
            c.state = "down"
            cause = note or f"{name}: {describe(code)}; see its log"
            self._event(name, "config_error", cause, exit_code=code, reason="config")
            self.shutdown(now, code=CONFIG_EXIT, cause=cause)
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

    def _unpark_stable(self, now: float) -> None:
        for name in self.order:
            ran = stable_for(self.children[name], now, self.settings.period_s)
            if ran is not None:
                unpark(self.children[name])
                self._event(name, "unparked", f"ran {ran:.1f}s without failing")

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
        if c.parked:
            # The operator asks for it now: a fresh start with a fresh budget.
            unpark(c)
            self._event(name, "unparked", "restarted by operator")
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
        new_order = [s.name for s in specs]
        if len(set(new_order)) != len(new_order):
            raise ValueError(f"duplicate child names in {new_order}")
        touched: list[str] = []
        group = self._new_group()
        changed: list[str] = []
        for spec in specs:
            c = self.children.get(spec.name)
            if c is None or c.removed:
                self.children[spec.name] = new_child(spec, settings, self.rng, group=group, not_before=now)
                touched.append(spec.name)
                self._event(spec.name, "added", "config reload")
                continue
            retune(c.backoff, settings)
            c.intensity.max_restarts, c.intensity.period_s = settings.max_restarts, settings.period_s
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
            self._unpark_stable(now)
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

    def _start_eligible(self, now: float) -> None:
        for name in self.order:
            c = self.children[name]
            if may_start(self.order, self.children, c, now):
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
        d = decide(c, reason, abnormal=abnormal, now=now, settings=self.settings, rng=self.rng)
        if d.action == "down":
            c.state = "down"
            self._event(c.spec.name, "not_restarted", d.detail, reason=reason)
        elif d.action == "exit":
            c.state = "down"
            self.shutdown(now, code=1, cause=d.detail)
        else:
            if d.action == "park":
                self._event(c.spec.name, "parked", d.detail, reason=reason)
            self._restart_group(c, reason, d.delay, now)

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
