"""The supervisor with real processes: the real bus worker plus small test children.

The test children are this module run as a program (``python -m
tests.integration.test_supervisor_processes child NAME MODE XSUB ORDER_FILE``): ``hb``
heartbeats like a worker and exits on SIGTERM, writing its name to ORDER_FILE; ``stubborn``
ignores SIGTERM; ``crash`` exits 3 at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zmq

from shared.config import Config
from shared.control import ControlError, request
from shared.journal import read
from shared.messages import BATCH_DECODER, WorkerEvent
from tests.support.config import make_config, reported_port, write_config
from tests.support.procs import ROOT, kxfeed_cmd, wait_until

HB_INTERVAL_S = 0.2
# Short enough for fast tests, long enough that a loaded machine (2 cores shared by several
# test runs) does not trip the watchdog or the shutdown timeout by accident.
FAST = {
    "heartbeat_timeout_s": 2.5,
    "shutdown_timeout_s": 8.0,
    "ready_timeout_s": 15.0,
    "backoff_initial_s": 0.4,
    "backoff_max_s": 1.0,
    "backoff_jitter": 0.1,
    "max_restarts": 6,
    "max_restarts_period_s": 30.0,
}


# ---- the test child --------------------------------------------------------------------------
def child_main(name: str, mode: str, xsub: str, order_file: str) -> int:
    from shared.bus import Publisher
    from shared.messages import Heartbeat

    if mode == "crash":
        print(f"{name}: crashing at start", file=sys.stderr)
        return 3
    stop = False

    def on_term(signum: int, frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, signal.SIG_IGN if mode == "stubborn" else on_term)
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    pub = Publisher(ctx, xsub, name)
    started = time.monotonic()
    n = 0
    while not stop:
        n += 1
        uptime_ms = int((time.monotonic() - started) * 1000)
        hb = Heartbeat(
            worker=name, pid=os.getpid(), uptime_ms=uptime_ms, ready=True, counters={"messages": n * 10}
        )
        pub.publish(hb)
        time.sleep(HB_INTERVAL_S)
    with open(order_file, "a") as fh:
        fh.write(f"{name}\n")
    pub.close(0)
    ctx.destroy(0)
    return 0


def child(name: str, mode: str, cfg: Config, order_file: Path, **kw: Any) -> dict[str, Any]:
    command = [sys.executable, "-m", "tests.integration.test_supervisor_processes", "child"]
    command += [name, mode, cfg.bus.xsub, str(order_file)]
    spec: dict[str, Any] = {"name": name, "command": command}
    if mode == "crash":
        spec.update(ready="spawn", heartbeat=False)
    spec.update(kw)
    return spec


# ---- helpers ---------------------------------------------------------------------------------
def _toml_inline(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_inline(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_inline(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value)


Children = Callable[[Config], list[dict[str, Any]]]


def supervised_config(tmp: Path, children: Children, **supervisor: Any) -> tuple[Config, Path]:
    """A private config whose [supervisor] children are ``children(cfg)`` (as inline tables).

    The children are a function of the config because their commands name its bus endpoint.
    """
    base = make_config(
        tmp, supervisor={**FAST, **supervisor}, busproxy={"heartbeat_interval_s": HB_INTERVAL_S}
    )
    cfg = msgspec.structs.replace(
        base,
        supervisor=msgspec.convert(
            {**msgspec.to_builtins(base.supervisor), "children": children(base)}, type(base.supervisor)
        ),
    )
    path = write_config(base, tmp / "kx.toml")
    text = path.read_text().replace("children = []", f"children = {_toml_inline(children(base))}", 1)
    path.write_text(text)
    return cfg, path


def set_children(path: Path, children: list[dict[str, Any]]) -> None:
    """Rewrite the ``children`` of a config written by :func:`supervised_config` (for reloads)."""
    lines = [
        f"children = {_toml_inline(children)}" if line.startswith("children = ") else line
        for line in path.read_text().splitlines()
    ]
    path.write_text("\n".join(lines) + "\n")


class Up:
    """``kxfeed up`` as a real process, with JSON logs in a file."""

    def __init__(self, cfg: Config, path: Path, *extra: str) -> None:
        self.cfg = cfg
        self.log_path = path.parent / "up.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            kxfeed_cmd("up", "--config", str(path), "--log-json", *extra),
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = request(self.cfg.supervisor.control, "status", timeout_s=2.0)
        return result

    def workers(self) -> dict[str, dict[str, Any]]:
        try:
            return {w["worker"]: w for w in self.status()["workers"]}
        except ControlError:
            return {}

    def wait_running(self, *names: str, timeout: float = 40.0) -> dict[str, dict[str, Any]]:
        def ok() -> bool:
            ws = self.workers()
            return bool(ws) and all(ws.get(n, {}).get("state") == "running" for n in names)

        assert wait_until(ok, timeout), f"not all running: {self.workers()}\n{self.log()}"
        return self.workers()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_records(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log().splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return out

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{reported_port(self.cfg, 'supervisor')}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            text: str = resp.read().decode()
        return text

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        finally:
            self._log.close()
        return code

    def kill_everything(self) -> None:
        """Cleanup after a failed test: the supervisor and whatever children it left."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        mine = str(self.log_path.parent).encode()
        for rec in self.log_records():
            pid = rec.get("pid")
            if not isinstance(pid, int) or pid == self.proc.pid:
                continue
            # Only a process whose command line names this test's directory: a pid may be reused.
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if mine in cmdline:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
        if not self._log.closed:
            self._log.close()


def metric(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0])) if "{" in line else {}
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def up_factory() -> Any:
    started: list[Up] = []

    def make(cfg: Config, path: Path, *extra: str) -> Up:
        u = Up(cfg, path, *extra)
        started.append(u)
        return u

    yield make
    for u in started:
        u.kill_everything()


# ---- tests -----------------------------------------------------------------------------------
def test_sigkill_restarts_with_backoff_and_counts(tmp_path: Path, up_factory: Any) -> None:
    order = tmp_path / "order.txt"
    # A roomy heartbeat timeout: after the bus restart the watchdog must not fire on a busy machine.
    cfg, path = supervised_config(
        tmp_path, lambda c: [{"name": "bus"}, child("alpha", "hb", c, order)], heartbeat_timeout_s=4.0
    )
    up = up_factory(cfg, path)
    ws = up.wait_running("bus", "alpha")
    alpha_pid, bus_pid = ws["alpha"]["pid"], ws["bus"]["pid"]

    os.kill(alpha_pid, signal.SIGKILL)
    assert wait_until(lambda: up.workers()["alpha"]["pid"] not in (None, alpha_pid), 10), up.log()
    ws = up.wait_running("alpha")
    assert ws["alpha"]["restarts"] == 1 and ws["alpha"]["last_exit_code"] == -9
    assert ws["bus"]["pid"] == bus_pid, "one_for_one: the bus is left alone"
    events = [e for e in up.status()["events"] if e["worker"] == "alpha"]
    exited = next(e for e in events if e["event"] == "exited")
    respawned = [e for e in events if e["event"] == "spawned"][-1]
    gap = respawned["ts"] - exited["ts"]
    assert gap >= 0.4 * (1 - 0.1) - 0.05, f"restarted {gap:.3f}s after the kill: no backoff"
    text = up.metrics()
    assert metric(text, "kxfeed_worker_restarts_total", worker="alpha", reason="killed") == 1.0
    assert metric(text, "kxfeed_worker_last_exit_code", worker="alpha") == -9.0
    assert metric(text, "kxfeed_worker_up", worker="alpha") == 1.0
    assert (metric(text, "kxfeed_worker_uptime_seconds", worker="bus") or 0) > 0

    # Kill the real bus: it comes back and the other child's heartbeats flow through it again.
    os.kill(bus_pid, signal.SIGKILL)
    assert wait_until(lambda: up.workers()["bus"]["pid"] not in (None, bus_pid), 10), up.log()
    up.wait_running("bus", "alpha")
    # Heartbeats flow again once the child's publisher and our subscription reconnect.
    assert wait_until(lambda: (up.workers()["alpha"]["heartbeat_age_s"] or 9.0) < 0.9, 10), up.workers()
    assert wait_until(lambda: (up.workers()["alpha"]["messages_per_s"] or 0) > 0, 5), up.workers()
    assert up.workers()["alpha"]["pid"] == ws["alpha"]["pid"], "one_for_one: alpha is left alone"
    assert up.stop() == 0

    # The supervisor's events were journaled for the writer, as WorkerEvent messages.
    events_seen = []
    for rec in read(Path(cfg.journal.dir) / "supervisor"):
        events_seen += [m for m in BATCH_DECODER.decode(rec.payload) if isinstance(m, WorkerEvent)]
    assert any(e.worker == "alpha" and e.event == "exited" and e.exit_code == -9 for e in events_seen)
    assert any(e.worker == "bus" and e.event == "restart" for e in events_seen)
    assert all(e.pub == "supervisor" for e in events_seen)


def test_sigstop_is_caught_by_the_watchdog(tmp_path: Path, up_factory: Any) -> None:
    order = tmp_path / "order.txt"
    # The flake seen once: on a loaded machine the bus (whose heartbeat travels through itself)
    # went silent past the 2.5 s timeout and was restarted too, which is not what this test is
    # about. The bus gets a roomy timeout; alpha, the one stopped, keeps the short one.
    bus = {"name": "bus", "heartbeat_timeout_s": 60.0}
    cfg, path = supervised_config(tmp_path, lambda c: [bus, child("alpha", "hb", c, order)])
    up = up_factory(cfg, path)
    ws = up.wait_running("bus", "alpha")
    pid = ws["alpha"]["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        assert wait_until(lambda: up.workers()["alpha"]["pid"] not in (None, pid), 60), up.log()
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGCONT)
    ws = up.wait_running("alpha")
    assert not alive(pid)
    # SIGTERM + SIGCONT let the stopped child exit cleanly (it wrote its name on the way out).
    assert order.read_text().split() == ["alpha"]
    assert ws["alpha"]["restarts"] == 1
    assert metric(up.metrics(), "kxfeed_worker_restarts_total", worker="alpha", reason="watchdog") == 1.0
    assert any(r.get("msg") == "child watchdog" and r.get("worker") == "alpha" for r in up.log_records())
    assert up.stop() == 0


def test_crash_at_start_beyond_intensity_escalates_and_exits_nonzero(tmp_path: Path, up_factory: Any) -> None:
    order = tmp_path / "order.txt"
    cfg, path = supervised_config(
        tmp_path,
        lambda c: [{"name": "bus"}, child("crashy", "crash", c, order)],
        on_intensity="exit",
        max_restarts=3,
        backoff_initial_s=0.1,
        backoff_max_s=0.2,
    )
    up = up_factory(cfg, path)
    code = up.proc.wait(30)
    assert code == 1, up.log()
    records = up.log_records()
    spawns = [r for r in records if r.get("msg") == "child spawned" and r.get("worker") == "crashy"]
    assert len(spawns) == 4, "the first start plus max_restarts=3 restarts"
    assert any(r.get("msg") == "restart intensity exceeded: stopping everything" for r in records)
    bus_exit = [r for r in records if r.get("msg") == "child exited" or r.get("worker") == "bus"]
    assert any(r.get("worker") == "bus" and r.get("reason") == "escalation" for r in bus_exit), "bus stopped"
    bus_pids = {r["pid"] for r in records if r.get("worker") == "bus" and isinstance(r.get("pid"), int)}
    assert bus_pids and not any(alive(p) for p in bus_pids)


def test_sigterm_stops_children_in_reverse_order(tmp_path: Path, up_factory: Any) -> None:
    order = tmp_path / "order.txt"

    def children(cfg: Config) -> list[dict[str, Any]]:
        return [
            {"name": "bus"},
            child("a", "hb", cfg, order),
            child("b", "hb", cfg, order),
            child("c", "hb", cfg, order),
            child("stubborn", "stubborn", cfg, order, shutdown_timeout_s=1.5),
        ]

    cfg, path = supervised_config(tmp_path, children)
    up = up_factory(cfg, path)
    ws = up.wait_running("bus", "a", "b", "c", "stubborn")
    started = [r["worker"] for r in up.log_records() if r.get("msg") == "child spawned"]
    assert started == ["bus", "a", "b", "c", "stubborn"]
    assert up.stop() == 0
    assert order.read_text().split() == ["c", "b", "a"]
    exits = [(r["worker"], r["exit_code"]) for r in up.log_records() if r.get("msg") == "child exited"]
    assert exits == [("stubborn", -9), ("c", 0), ("b", 0), ("a", 0), ("bus", 0)]
    stopped = [r["worker"] for r in up.log_records() if r.get("msg") == "child stopping"]
    assert stopped == ["stubborn", "c", "b", "a", "bus"]
    killed = [r for r in up.log_records() if r.get("msg") == "child killed"]
    assert [r["worker"] for r in killed] == ["stubborn"], "SIGKILL only for the one that ignored SIGTERM"
    for w in ws.values():
        assert not alive(w["pid"])


def test_metric_names_match_the_contract() -> None:
    from services.supervisor import reporting as worker

    names = {m._name for m in (worker.WORKER_UP, worker.WORKER_UPTIME, worker.WORKER_EXIT)}
    names.add(worker.WORKER_RESTARTS._name + "_total")
    assert names == {
        "kxfeed_worker_up",
        "kxfeed_worker_uptime_seconds",
        "kxfeed_worker_last_exit_code",
        "kxfeed_worker_restarts_total",
    }
    assert worker.WORKER_RESTARTS._labelnames == ("worker", "reason")


if __name__ == "__main__" and len(sys.argv) == 6 and sys.argv[1] == "child":
    sys.exit(child_main(*sys.argv[2:]))
