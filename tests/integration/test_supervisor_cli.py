"""``kxfeed up / status / restart / stop`` as a user runs them, against real processes."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from services import registry
from shared.config import load_config
from tests.integration.test_supervisor_processes import (
    Up,
    child,
    metric,
    set_children,
    supervised_config,
    up_factory,
)
from tests.support.config import make_config, write_config
from tests.support.procs import ROOT, OnTerminal, kxfeed_cmd, wait_until

__all__ = ["up_factory"]  # the fixture, re-used from the process tests


def _run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(kxfeed_cmd(*args), cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_status_restart_and_stop_commands(tmp_path: Path, up_factory: Any) -> None:
    order = tmp_path / "order.txt"
    cfg, path = supervised_config(tmp_path, lambda c: [{"name": "bus"}, child("alpha", "hb", c, order)])
    up: Up = up_factory(cfg, path)
    ws = up.wait_running("bus", "alpha")
    pid = ws["alpha"]["pid"]

    out = _run("status", "--config", str(path))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    header = next(line for line in lines if line.startswith("WORKER"))
    for column in ("PID", "STATE", "UPTIME", "RESTARTS", "HB AGE", "MSG/S"):
        assert column in header
    alpha_row = next(line for line in lines if line.startswith("alpha"))
    assert str(pid) in alpha_row and "running" in alpha_row

    out = _run("restart", "alpha", "--config", str(path))
    assert out.returncode == 0 and "restarting alpha" in out.stdout, out.stderr
    assert wait_until(lambda: up.workers()["alpha"]["pid"] not in (None, pid), 10)
    up.wait_running("alpha")
    assert metric(up.metrics(), "kxfeed_worker_restarts_total", worker="alpha", reason="manual") == 1.0

    out = _run("stop", "alpha", "--config", str(path))
    assert out.returncode == 0, out.stderr
    assert wait_until(lambda: up.workers()["alpha"]["state"] == "held", 10)
    time.sleep(1.0)
    assert up.workers()["alpha"]["state"] == "held", "a held worker is not restarted"
    assert metric(up.metrics(), "kxfeed_worker_up", worker="alpha") == 0.0

    out = _run("restart", "nosuch", "--config", str(path))
    assert out.returncode == 2 and "unknown worker 'nosuch'" in out.stderr

    out = _run("stop", "--config", str(path))
    assert out.returncode == 0 and "stopped" in out.stdout, out.stderr
    assert up.proc.wait(10) == 0

    out = _run("status", "--config", str(path), "--timeout", "0.5")
    assert out.returncode == 1 and "no supervisor" in out.stderr


def test_sighup_restarts_only_changed_children(tmp_path: Path, up_factory: Any) -> None:
    order = tmp_path / "order.txt"
    cfg, path = supervised_config(tmp_path, lambda c: [{"name": "bus"}, child("alpha", "hb", c, order)])
    up: Up = up_factory(cfg, path)
    ws = up.wait_running("bus", "alpha")
    new_children = [
        {"name": "bus"},
        child("alpha", "hb", cfg, order, shutdown_timeout_s=5.0),
        child("beta", "hb", cfg, order),
    ]
    set_children(path, new_children)
    up.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "beta" in up.workers(), 10), up.log()
    ws2 = up.wait_running("bus", "alpha", "beta")
    assert ws2["bus"]["pid"] == ws["bus"]["pid"], "the bus spec did not change: not restarted"
    assert ws2["alpha"]["pid"] != ws["alpha"]["pid"], "alpha's spec changed: restarted"
    assert metric(up.metrics(), "kxfeed_worker_restarts_total", worker="alpha", reason="reload") == 1.0
    assert up.stop() == 0


def test_up_refuses_workers_that_do_not_exist(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    path = write_config(cfg, tmp_path / "kx.toml")
    out = _run("up", "--config", str(path), "--workers", "bus,nosuch", "--log-json")
    assert out.returncode == 2 and "nosuch" in out.stderr
    missing = [n for n in registry.WORKER_MODULES if n not in registry.available()]
    if missing:
        out = _run("up", "--config", str(path), "--workers", f"bus,{missing[0]}", "--log-json")
        assert out.returncode == 2 and "not part of this install" in out.stderr


def test_a_second_up_refuses_to_start(tmp_path: Path, up_factory: Any) -> None:
    cfg, path = supervised_config(tmp_path, lambda c: [{"name": "bus"}])
    up: Up = up_factory(cfg, path)
    up.wait_running("bus")
    out = _run("up", "--config", str(path), "--log-json")
    assert out.returncode == 1 and "already" in out.stderr
    assert up.stop() == 0


def test_live_status_in_a_terminal(tmp_path: Path) -> None:
    _, path = supervised_config(tmp_path, lambda c: [{"name": "bus"}])
    with OnTerminal("up", "--config", str(path)) as term:

        def seen_enough() -> bool:
            # The bus itself running (not just any row): a SIGTERM while it still imports (a
            # loaded machine) ends it before it logs anything, and its log below is empty.
            last = term.screen.rsplit(b"\x1b[J", 1)[-1].decode(errors="replace")
            bus_running = any(r.split()[:1] == ["bus"] and " running " in f" {r} " for r in last.splitlines())
            return term.screen.count(b"\x1b[J") >= 3 and bus_running

        term.read_until(seen_enough, 40)
        term.proc.send_signal(signal.SIGTERM)
        assert term.proc.wait(20) == 0
    screen = term.screen
    text = screen.decode(errors="replace")
    assert "WORKER" in text and "running" in text, text
    assert screen.count(b"\x1b[J") >= 3, "the status is redrawn in place"
    assert b'"msg"' not in screen and "INFO" not in text, "no log lines on the live screen"
    logs = tmp_path / "logs"
    assert "proxy up" in (logs / "bus.log").read_text()
    assert "supervising" in (logs / "supervisor.log").read_text()


def test_up_says_so_when_its_metrics_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))  # held by this test for as long as kxfeed up tries it
        taken.listen()
        port = taken.getsockname()[1]
        _, path = supervised_config(tmp_path, lambda c: [{"name": "bus"}], metrics_port=port)
        assert load_config(path, environ={}).supervisor.metrics_port == port
        out = _run("up", "--config", str(path), "--log-json")
    # The preflight finds it before anything starts: one line naming the key to change.
    assert out.returncode == 2, out.stderr
    assert f"port {port} on 127.0.0.1 ([supervisor] metrics_port) is taken" in out.stderr
    assert "Traceback" not in out.stderr
