"""The supervisor state machine, driven with a fake clock and fake pids."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace
from typing import Any

import pytest

from services.supervisor.core import SupervisorCore
from services.supervisor.model import ChildSpec, Kill, Spawn, SupervisorEvent, describe_exit
from services.supervisor.policy import PolicySettings
from services.supervisor.status import message_rate, restarts_in_window
from shared.config import EX_CONFIG

SETTINGS = PolicySettings(
    strategy="one_for_one",
    max_restarts=3,
    period_s=60.0,
    backoff_initial_s=1.0,
    backoff_max_s=8.0,
    backoff_multiplier=2.0,
    backoff_jitter=0.0,
    backoff_reset_s=30.0,
    park_backoff_initial_s=20.0,
    park_backoff_max_s=80.0,
)
EXIT = replace(SETTINGS, on_intensity="exit")


def spec(name: str, **kw: Any) -> ChildSpec:
    base: dict[str, Any] = {
        "command": ("run", name),
        "ready": "control" if name == "bus" else "heartbeat",
        "heartbeat_timeout_s": 5.0,
        "shutdown_timeout_s": 2.0,
        "ready_timeout_s": 10.0,
    }
    base.update(kw)
    return ChildSpec(name, **base)


PIPELINE = [spec("bus"), spec("writer"), spec("orderbook"), spec("connector")]


class Harness:
    """Plays the shell: spawns get fake pids, signals are recorded, time moves by hand."""

    def __init__(self, specs: list[ChildSpec] = PIPELINE, settings: PolicySettings = SETTINGS) -> None:
        self.core = SupervisorCore(specs, settings, random.Random(1))
        self.now = 0.0
        self._pids = itertools.count(100)
        self.pids: dict[str, int] = {}
        self.spawns: list[str] = []
        self.signals: list[tuple[str, str]] = []
        self.events: list[SupervisorEvent] = []

    def tick(self, dt: float = 0.0) -> None:
        self.now += dt
        self.core.tick(self.now)
        self.apply()

    def apply(self) -> None:
        while True:
            actions, events = self.core.take()
            self.events += events
            if not actions and not events:
                return
            for a in actions:
                if isinstance(a, Spawn):
                    pid = next(self._pids)
                    self.pids[a.name] = pid
                    self.spawns.append(a.name)
                    self.core.spawned(a.name, pid, self.now)
                elif isinstance(a, Kill):
                    self.signals.append((a.name, a.sig))

    def advance(self, dt: float, silent: tuple[str, ...] = ()) -> None:
        """Let ``dt`` pass in small steps, every running child heartbeating except ``silent``."""
        end = self.now + dt
        while self.now < end - 1e-9:
            self.tick(min(0.5, end - self.now))
            for name in self.core.order:
                if name not in silent and self.state(name) == "running":
                    self.hb(name)

    def ready(self, name: str, **counters: int) -> None:
        if self.core.children[name].spec.ready == "control":
            self.core.probe_ok(name, self.now)
        else:
            self.core.heartbeat(name, True, counters, self.now)
        self.apply()
        self.tick()

    def hb(self, name: str, **counters: int) -> None:
        self.core.heartbeat(name, True, counters, self.now)
        self.apply()

    def exit(self, name: str, code: int, note: str = "") -> None:
        self.core.exited(name, code, self.now, note)
        self.apply()
        self.tick()

    def start_all(self) -> None:
        self.tick()
        for name in self.core.order:
            assert self.state(name) == "starting", name
            self.ready(name)
        assert all(self.state(n) == "running" for n in self.core.order)

    def state(self, name: str) -> str:
        return self.core.children[name].state

    def named(self, event: str) -> list[SupervisorEvent]:
        return [e for e in self.events if e.event == event]


def test_start_is_readiness_gated_in_order() -> None:
    h = Harness()
    h.tick()
    assert h.spawns == ["bus"]
    h.tick(1.0)
    assert h.spawns == ["bus"], "nothing else starts before the bus answers ping"
    h.ready("bus")
    assert h.spawns == ["bus", "writer"]
    h.core.heartbeat("writer", False, {}, h.now)
    h.tick(0.5)
    assert h.spawns == ["bus", "writer"], "a heartbeat that is not ready does not open the gate"
    h.ready("writer")
    h.ready("orderbook")
    assert h.spawns == ["bus", "writer", "orderbook", "connector"]
    assert [e.worker for e in h.named("ready")] == ["bus", "writer", "orderbook"]


def test_one_for_one_crash_restarts_only_that_child_after_backoff() -> None:
    h = Harness()
    h.start_all()
    h.exit("orderbook", 1)
    (restart,) = h.named("restart")
    assert (restart.worker, restart.reason) == ("orderbook", "crash")
    assert h.state("orderbook") == "pending"
    assert h.signals == [], "siblings are left alone"
    h.tick(0.9)
    assert h.spawns.count("orderbook") == 1, "backoff of 1 s not over yet"
    h.tick(0.2)
    assert h.spawns.count("orderbook") == 2
    assert h.core.children["orderbook"].restarts == 1
    assert h.core.children["orderbook"].last_exit == 1


def test_backoff_doubles_on_a_crash_loop_and_resets_after_a_stable_run() -> None:
    h = Harness(settings=replace(SETTINGS, max_restarts=100))
    h.start_all()
    delays = []
    for _ in range(5):
        h.exit("writer", 1)
        delays.append(h.core.children["writer"].not_before - h.now)
        h.tick(delays[-1])
        h.ready("writer")
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0]
    h.advance(30.0)
    h.exit("writer", 1)
    assert h.core.children["writer"].not_before - h.now == 1.0


def test_rest_for_one_stops_later_children_in_reverse_then_restarts_in_order() -> None:
    h = Harness(settings=replace(SETTINGS, strategy="rest_for_one"))
    h.start_all()
    h.exit("writer", 1)
    assert h.signals == [("connector", "TERM")], "one at a time, the last started first"
    reasons = {e.worker: e.reason for e in h.named("restart")}
    assert reasons == {"writer": "crash", "orderbook": "sibling", "connector": "sibling"}
    h.exit("connector", 0)
    assert h.signals == [("connector", "TERM"), ("orderbook", "TERM")]
    assert h.state("bus") == "running"
    h.exit("orderbook", 0)
    h.tick(1.0)
    assert h.spawns[-1] == "writer"
    h.tick(1.0)
    assert h.spawns[-1] == "writer", "orderbook waits for the writer to be ready"
    h.ready("writer")
    assert h.spawns[-1] == "orderbook"
    h.ready("orderbook")
    assert h.spawns[-1] == "connector"
    assert h.spawns.count("bus") == 1
    assert len(h.named("restart")) == 3
    assert restarts_in_window(h.core.children, h.now) == 1, "one failure, one unit of intensity"


def test_one_for_all_restarts_everyone() -> None:
    h = Harness(settings=replace(SETTINGS, strategy="one_for_all"))
    h.start_all()
    h.exit("orderbook", 3)
    for name in ("connector", "writer", "bus"):
        assert h.signals[-1] == (name, "TERM")
        h.exit(name, 0)
    h.tick(1.0)
    assert h.spawns[-1] == "bus"
    h.ready("bus")
    h.ready("writer")
    h.tick(1.0)
    assert h.spawns[-1] == "orderbook"
    h.ready("orderbook")
    assert h.spawns[-4:] == ["bus", "writer", "orderbook", "connector"]


def test_intensity_exceeded_escalates_and_stops_the_rest_in_reverse() -> None:
    h = Harness(settings=EXIT)
    h.start_all()
    for _ in range(3):
        h.exit("connector", 1)
        h.advance(10.0)
        assert h.state("connector") == "starting"
    h.exit("connector", 1)
    assert h.core.shutting_down and h.core.exit_code == 1
    (esc,) = h.named("escalated")
    assert "more than 3 restarts" in esc.detail
    assert h.state("connector") == "down"
    for name in ("orderbook", "writer", "bus"):
        assert h.signals[-1] == (name, "TERM")
        assert not h.core.done
        h.exit(name, 0)
    assert h.core.done


def test_crash_at_start_burns_through_backoff_not_microseconds() -> None:
    h = Harness(specs=[spec("bus"), spec("crashy", ready="spawn", heartbeat=False)], settings=EXIT)
    h.tick()
    h.ready("bus")
    times = []
    while not h.core.shutting_down:
        times.append(h.now)
        h.exit("crashy", 1)
        h.tick(h.core.children["crashy"].not_before - h.now)
    assert times == [0.0, 1.0, 3.0, 7.0], "1 s, 2 s, 4 s between the attempts, then escalation"
    assert h.core.exit_code == 1


def test_watchdog_terminates_a_silent_child_then_kills_it() -> None:
    h = Harness()
    h.start_all()
    h.advance(4.9, silent=("orderbook",))
    assert h.signals == []
    h.advance(0.2, silent=("orderbook",))
    assert h.signals == [("orderbook", "TERM")]
    assert h.named("watchdog")[0].worker == "orderbook"
    h.advance(2.0, silent=("orderbook",))
    assert h.signals[-1] == ("orderbook", "KILL")
    h.exit("orderbook", -9)
    (restart,) = h.named("restart")
    assert (restart.worker, restart.reason) == ("orderbook", "watchdog")


def test_a_silent_bus_is_blamed_not_everyone_behind_it() -> None:
    h = Harness()
    h.start_all()
    for name in h.core.order:
        h.hb(name)
    h.tick(6.0)
    stopped = [n for n, sig in h.signals if sig == "TERM"]
    assert stopped == ["bus"]


def test_ready_timeout_restarts_a_child_that_never_reports_ready() -> None:
    h = Harness()
    h.tick()
    h.ready("bus")
    h.advance(10.5)
    assert h.signals == [("writer", "TERM")]
    h.exit("writer", 0)
    (restart,) = h.named("restart")
    assert (restart.worker, restart.reason) == ("writer", "ready_timeout")


def test_shutdown_stops_in_reverse_order_one_at_a_time() -> None:
    h = Harness()
    h.start_all()
    h.core.shutdown(h.now)
    h.tick()
    assert h.signals == [("connector", "TERM")]
    h.exit("connector", 0)
    assert h.signals[-1] == ("orderbook", "TERM")
    h.tick(2.5)
    assert h.signals[-1] == ("orderbook", "KILL"), "no exit within the shutdown timeout"
    h.exit("orderbook", -9)
    h.exit("writer", 0)
    assert h.signals[-1] == ("bus", "TERM")
    h.exit("bus", 0)
    assert h.core.done and h.core.exit_code == 0
    assert not h.named("restart"), "nothing restarts while shutting down"


def test_transient_and_temporary_children() -> None:
    specs = [
        spec("bus"),
        spec("t", restart="transient", ready="spawn"),
        spec("tmp", restart="temporary", ready="spawn"),
    ]
    h = Harness(specs=specs)
    h.tick()
    h.ready("bus")
    h.tick()
    h.exit("t", 0)
    assert h.state("t") == "down"
    h.exit("tmp", 1)
    assert h.state("tmp") == "down"
    h.core.restart("t", h.now)
    h.tick()
    h.exit("t", 2)
    assert h.state("t") == "pending", "transient restarts after an abnormal exit"
    assert not h.core.shutting_down


def test_operator_stop_and_restart() -> None:
    h = Harness()
    h.start_all()
    h.core.stop_child("orderbook", h.now)
    h.tick()
    assert h.signals == [("orderbook", "TERM")]
    h.exit("orderbook", 0)
    h.advance(100.0)
    assert h.state("orderbook") == "down"
    assert h.core.status(h.now)[2]["state"] == "held"
    h.core.restart("orderbook", h.now)
    h.tick()
    assert h.state("orderbook") == "starting"
    assert restarts_in_window(h.core.children, h.now) == 0, "operator restarts do not count"
    h.ready("orderbook")
    h.core.restart("writer", h.now)
    h.tick()
    assert h.signals[-1] == ("writer", "TERM")
    h.exit("writer", 0)
    assert h.spawns[-1] == "writer", "manual restarts skip the backoff"


def test_reload_restarts_only_changed_children_and_adds_and_removes() -> None:
    h = Harness()
    h.start_all()
    new = [spec("bus"), spec("writer", fingerprint="db changed"), spec("orderbook"), spec("arb")]
    touched = h.core.reload(new, SETTINGS, h.now)
    assert sorted(touched) == ["arb", "connector", "writer"]
    h.tick()
    assert h.signals == [("connector", "TERM")]
    h.exit("connector", 0)
    assert h.signals[-1] == ("writer", "TERM")
    h.exit("writer", 0)
    assert "connector" not in h.core.children
    assert h.spawns[-1] == "writer"
    h.ready("writer")
    assert h.spawns[-1] == "arb"
    assert h.spawns.count("bus") == 1 and h.spawns.count("orderbook") == 1
    assert {(e.worker, e.reason) for e in h.named("restart")} == {("writer", "reload")}


def test_heartbeat_counters_become_rates() -> None:
    h = Harness()
    h.start_all()
    h.hb("writer", messages=100, rows=10)
    h.tick(2.0)
    h.hb("writer", messages=300, rows=12)
    row = h.core.status(h.now)[1]
    assert row["messages_per_s"] == 100.0
    assert row["counters"] == {"messages": 300, "rows": 12}
    assert row["heartbeat_age_s"] == 0.0


def test_message_rate_picks_the_workers_message_counter() -> None:
    assert message_rate({}) is None
    assert message_rate({"rows": 5.0}) is None, "no message counter: no made-up rate"
    assert message_rate({"rows": 9.0, "accepted": 3.5}) == 3.5
    assert message_rate({"frames": 2.0, "deltas_applied": 7.0}) == 2.0


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        SupervisorCore([spec("bus"), spec("bus")], SETTINGS)


def test_spawn_failure_counts_as_a_failure() -> None:
    h = Harness(specs=[spec("x", ready="spawn")])
    h.core.tick(0.0)
    actions, _ = h.core.take()
    assert actions == [Spawn("x")]
    h.core.spawn_failed("x", "No such file", 0.0)
    h.apply()
    assert h.state("x") == "pending"
    assert h.named("restart")[0].reason == "spawn_error"


# ---- per-worker intensity, parking, config errors ----------------------------------------------
def crash_until_parked(h: Harness, name: str) -> None:
    for _ in range(SETTINGS.max_restarts):
        h.exit(name, 1)
        h.advance(10.0)
        assert h.state(name) == "running" or h.state(name) == "starting"
        if h.state(name) == "starting":
            h.ready(name)
    h.exit(name, 1)


def test_a_flapping_worker_is_parked_while_the_others_keep_running() -> None:
    h = Harness()
    h.start_all()
    crash_until_parked(h, "orderbook")
    assert not h.core.shutting_down and h.core.exit_code == 0
    (parked,) = h.named("parked")
    assert parked.worker == "orderbook" and "more than 3 restarts in 60s" in parked.detail
    c = h.core.children["orderbook"]
    assert c.parked and c.parked_times == 1
    row = next(r for r in h.core.status(h.now) if r["worker"] == "orderbook")
    assert row["state"] == "parked" and row["parked"] is True
    # The park backoff (20 s, minus at most 0% jitter here) holds it back; the rest runs on.
    delay = c.not_before - h.now
    assert 20.0 * (1 - SETTINGS.backoff_jitter) <= delay <= 20.0
    h.advance(delay - 0.5)
    assert h.state("orderbook") == "pending"
    assert all(h.state(n) == "running" for n in ("bus", "writer", "connector"))
    h.advance(1.0)
    assert h.state("orderbook") == "starting", "back after its backoff"
    h.ready("orderbook")
    # Still parked: the next failure waits the doubled park backoff, not the short one.
    h.exit("orderbook", 1)
    assert 40.0 * (1 - SETTINGS.backoff_jitter) <= c.not_before - h.now <= 40.0
    assert len(h.named("parked")) == 1, "parked once, however many restarts follow"


def test_a_parked_worker_that_runs_a_whole_period_is_unparked() -> None:
    h = Harness()
    h.start_all()
    crash_until_parked(h, "connector")
    h.advance(h.core.children["connector"].not_before - h.now)
    h.ready("connector")
    h.advance(SETTINGS.period_s + 1.0)
    (unparked,) = h.named("unparked")
    assert unparked.worker == "connector"
    c = h.core.children["connector"]
    assert not c.parked and c.park.attempt == 0 and c.intensity.used(h.now) == 0
    h.exit("connector", 1)
    assert c.not_before - h.now <= SETTINGS.backoff_initial_s, "the short backoff again"


def test_intensity_is_counted_per_worker() -> None:
    h = Harness()
    h.start_all()
    for name in ("writer", "orderbook", "connector"):  # 3 failures each: each within its budget
        for _ in range(SETTINGS.max_restarts):
            h.exit(name, 1)
            h.advance(10.0)
            if h.state(name) == "starting":
                h.ready(name)
    assert not h.named("parked") and not h.core.shutting_down
    assert restarts_in_window(h.core.children, h.now) == SETTINGS.max_restarts


def test_an_operator_restart_unparks() -> None:
    h = Harness()
    h.start_all()
    crash_until_parked(h, "writer")
    h.core.restart("writer", h.now)
    h.apply()
    h.tick()
    assert h.state("writer") == "starting" and not h.core.children["writer"].parked
    assert h.named("unparked")[0].detail == "restarted by operator"


def test_a_config_error_stops_everything_with_the_workers_own_message() -> None:
    h = Harness()
    h.start_all()
    h.exit("connector", EX_CONFIG, "connector: env=demo needs a Kalshi API key")
    assert h.core.shutting_down and h.core.exit_code == 2
    assert h.core.stop_cause == "connector: env=demo needs a Kalshi API key"
    assert h.state("connector") == "down"
    assert not h.named("restart"), "a config error is not restarted"
    (exited,) = h.named("exited")
    assert exited.reason == "config" and exited.detail.startswith("exit status 78 (configuration error)")
    for name in ("orderbook", "writer", "bus"):
        assert h.signals[-1] == (name, "TERM")
        h.exit(name, 0)
    assert h.core.done


def test_a_config_error_without_a_note_still_names_the_worker() -> None:
    h = Harness()
    h.start_all()
    h.exit("writer", EX_CONFIG)
    assert h.core.exit_code == 2 and h.core.stop_cause.startswith("writer: exit status 78")


def test_exit_details_name_the_signal() -> None:
    h = Harness()
    h.start_all()
    h.exit("orderbook", -9)
    (exited,) = h.named("exited")
    assert exited.exit_code == -9 and exited.detail.startswith("killed by SIGKILL after")
    assert describe_exit(3) == "exit status 3" and describe_exit(-15) == "killed by SIGTERM"
