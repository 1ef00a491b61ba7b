"""Resilience under the real supervisor: no loop dies unseen, one flapping worker never stops
the service, and a configuration error is answered in the terminal instead of a crash loop."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from shared.config import Config
from shared.kalshi.auth import generate_private_key, private_pem
from tests.integration.test_supervisor_processes import Up, metric, supervised_config, up_factory
from tests.support.config import make_config, write_config
from tests.support.procs import ROOT, OnTerminal, clean_env, kxfeed_cmd, wait_until

__all__ = ["up_factory"]  # the fixture, re-used from the process tests

CRASH_CHILD = [sys.executable, "-m", "tests.integration.loop_crash_child"]


# ---- no loop dies unseen ---------------------------------------------------------------------
def test_a_worker_whose_background_loop_raises_exits_1_with_the_traceback(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    path = write_config(cfg, tmp_path / "kx.toml")
    trigger = tmp_path / "trigger"
    trigger.touch()
    proc = subprocess.run(
        [*CRASH_CHILD, str(path), str(trigger)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1, proc.stderr
    assert "background task orderbook:trigger failed" in proc.stderr
    assert "Traceback" in proc.stderr and "RuntimeError: background loop broke on purpose" in proc.stderr
    assert '"msg":"stopped","exit_code":1' in proc.stderr, "the log says the exit code it exits with"


def test_under_the_supervisor_a_background_loop_crash_is_a_restart(tmp_path: Path, up_factory: Any) -> None:
    trigger = tmp_path / "trigger"

    def children(c: Config) -> list[dict[str, Any]]:
        return [
            {"name": "bus"},
            {"name": "orderbook", "command": [*CRASH_CHILD, str(tmp_path / "kx.toml"), str(trigger)]},
        ]

    cfg, path = supervised_config(tmp_path, children)
    up: Up = up_factory(cfg, path)
    first = up.wait_running("bus", "orderbook")["orderbook"]
    trigger.touch()
    assert wait_until(lambda: up.workers()["orderbook"]["pid"] not in (None, first["pid"]), 30), up.log()
    again = up.wait_running("orderbook")["orderbook"]
    assert again["restarts"] == 1 and again["last_exit_code"] == 1
    exited = [
        r for r in up.log_records() if r.get("msg") == "child exited" and r.get("worker") == "orderbook"
    ]
    assert [(r["exit_code"], r["reason"]) for r in exited] == [(1, "crash")]
    crash = [r for r in up.log_records() if r.get("msg") == "background task orderbook:trigger failed"]
    assert len(crash) == 1 and "background loop broke on purpose" in crash[0]["exc"]
    assert up.stop() == 0


# ---- one flapping worker never stops the service ---------------------------------------------
def _rows(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return int(conn.execute("SELECT count(*) FROM book_deltas").fetchone()[0])
    except sqlite3.OperationalError:
        return 0  # the writer has not created its tables yet


@pytest.mark.slow
def test_a_worker_killed_six_times_is_parked_while_the_rest_keeps_storing(
    tmp_path: Path, up_factory: Any
) -> None:
    workers = ["bus", "sim", "writer", "orderbook", "connector"]
    cfg = make_config(
        tmp_path,
        supervisor={
            "workers": workers,
            "max_restarts": 5,
            # Six kills land well inside the window even when starts are slow on a loaded machine.
            "max_restarts_period_s": 300.0,
            "backoff_initial_s": 0.2,
            "backoff_max_s": 1.0,
            "park_backoff_initial_s": 12.0,
            "park_backoff_max_s": 24.0,
            "heartbeat_timeout_s": 20.0,
            "ready_timeout_s": 90.0,
            "shutdown_timeout_s": 15.0,
        },
        sim={"rate": 100.0, "markets": 12},
    )
    path = write_config(cfg, tmp_path / "kx.toml")
    db = tmp_path / "kxfeed.db"
    up: Up = up_factory(cfg, path)
    ws = up.wait_running(*workers, timeout=180)
    others = {n: ws[n]["pid"] for n in workers if n != "orderbook"}
    assert wait_until(lambda: _rows(db) > 0, 60), "market data reaches the database"

    pid = ws["orderbook"]["pid"]
    for kill in range(6):
        os.kill(pid, signal.SIGKILL)
        if kill == 5:
            break

        def respawned(old: int = pid) -> bool:
            return up.workers()["orderbook"]["pid"] not in (None, old)

        assert wait_until(respawned, 60), up.log()
        pid = up.workers()["orderbook"]["pid"]
    assert wait_until(lambda: up.workers()["orderbook"]["state"] == "parked", 30), up.workers()

    status = up.status()
    assert status["supervisor"]["parked"] == ["orderbook"]
    row = next(w for w in status["workers"] if w["worker"] == "orderbook")
    assert row["parked"] and row["restart_in_s"] > 0
    text = up.metrics()
    assert metric(text, "kxfeed_supervisor_parked_total", worker="orderbook") == 1.0
    assert metric(text, "kxfeed_worker_parked", worker="orderbook") == 1.0
    assert metric(text, "kxfeed_supervisor_parked_workers") == 1.0
    shown = subprocess.run(
        kxfeed_cmd("status", "--config", str(path)), cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert "PARKED: orderbook" in shown.stdout and "parked" in shown.stdout.split("orderbook", 2)[-1]

    # The rest keeps running and storing while the orderbook is parked.
    before = _rows(db)
    assert wait_until(lambda: _rows(db) > before, 30), "rows keep arriving"
    assert {n: w["pid"] for n, w in up.workers().items() if n != "orderbook"} == others
    assert all(up.workers()[n]["state"] == "running" for n in others)

    # It comes back after its backoff (still on probation: parked until it runs a whole period).
    up.wait_running("orderbook", timeout=90)
    back = up.workers()["orderbook"]
    assert back["pid"] != pid and back["parked"] is True

    records = up.log_records()
    parked = [r for r in records if r.get("msg") == "child parked"]
    assert [r["worker"] for r in parked] == ["orderbook"]
    assert not [r for r in records if "intensity exceeded" in str(r.get("msg"))], "nothing escalated"
    kills = [r for r in records if r.get("msg") == "child exited" and r.get("worker") == "orderbook"]
    assert len(kills) == 6 and all(
        r["exit_code"] == -9 and r["detail"].startswith("killed by SIGKILL") for r in kills
    ), "the logged exit is the real one: SIGKILL"
    assert up.stop(90) == 0, up.log()


# ---- config errors are not crashes -----------------------------------------------------------
def test_up_on_demo_without_credentials_exits_2_with_one_line(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, supervisor={"workers": ["bus", "connector"], "ready_timeout_s": 90.0})
    path = write_config(cfg, tmp_path / "kx.toml")
    proc = subprocess.run(
        kxfeed_cmd("up", "--config", str(path), "--no-live"),
        cwd=ROOT,
        env=clean_env(KXFEED_KALSHI_ENV="demo"),
        capture_output=True,
        text=True,
        timeout=180,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    # The preflight answers before the supervisor spawns anything (a worker that still meets a
    # config error exits EX_CONFIG and is not restarted: test_supervisor_core).
    assert proc.stderr.strip().splitlines() == [
        line for line in proc.stderr.strip().splitlines() if line.startswith("kxfeed up: ")
    ]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("kxfeed up: env=demo needs a Kalshi API key: export KALSHI_KEY_ID")
    assert "Traceback" not in out
    spawned = [line for line in out.splitlines() if "child spawned" in line]
    assert spawned == [], "nothing started, so nothing restarts in a loop"


def test_up_in_a_terminal_with_an_unsafe_key_file_exits_2_with_the_fix(tmp_path: Path) -> None:
    key = tmp_path / "kalshi-key.pem"
    key.write_bytes(private_pem(generate_private_key()))
    os.chmod(key, 0o644)
    cfg = make_config(tmp_path, supervisor={"workers": ["bus", "connector"], "ready_timeout_s": 90.0})
    path = write_config(cfg, tmp_path / "kx.toml")
    env = clean_env(KXFEED_KALSHI_ENV="demo", KALSHI_KEY_ID="test-key-id", KALSHI_PRIVATE_KEY_PATH=str(key))
    with OnTerminal("up", "--config", str(path), env=env) as term:
        term.read_until(lambda: term.proc.poll() is not None, 180)
        term.read_rest()
        assert term.proc.wait(10) == 2
    text = term.screen.decode(errors="replace")
    assert f"kxfeed up: private key file {key} has mode 0644" in text, text
    assert f"chmod 600 {key}" in text and "Traceback" not in text
    assert "test-key-id" not in text, "the key id is a secret"
