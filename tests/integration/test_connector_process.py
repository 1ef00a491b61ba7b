"""The connector as a real process (``kxfeed worker connector``), as the supervisor runs it."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from shared.config import EX_CONFIG
from shared.journal import read
from shared.kalshi.auth import generate_private_key, private_pem
from tests.support.config import make_config, write_config
from tests.support.control import stats
from tests.support.procs import kxfeed_cmd, spawn, stop_all, wait_until

KEY_ID = "0b7f1d2c-3e4a-4b5c-8d6e-7f8091a2b3c4"


def test_runs_against_the_sim_and_stops_cleanly(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, sim={"markets": 8, "rate": 100.0})
    path = write_config(cfg, tmp_path / "kxfeed.toml")
    procs = [spawn("worker", name, "--config", str(path)) for name in ("bus", "sim")]
    try:
        assert wait_until(lambda: stats(cfg.sim.control).get("ready"), 20)
        conn = spawn("worker", "connector", "--config", str(path), stderr=subprocess.PIPE)
        procs.append(conn)
        assert wait_until(lambda: stats(cfg.connector.control).get("connected") == 1, 20)
        assert wait_until(lambda: stats(cfg.connector.control).get("frames", 0) > 50, 10)
        s = stats(cfg.connector.control)
        assert s["valid_books"] == s["markets"] >= 8 and s["reconnects"] == 0
        conn.send_signal(signal.SIGTERM)
        assert conn.wait(15) == 0
        err = conn.stderr.read().decode() if conn.stderr else ""
        assert "kxfeed-sim-dev" not in err  # the key id is never logged
    finally:
        stop_all(procs, 10)
    records = list(read(Path(cfg.journal.dir) / "connector"))
    assert len(records) > 10


def test_key_file_readable_by_others_is_refused_at_start(tmp_path: Path) -> None:
    key_path = tmp_path / "kalshi-key.pem"
    key_path.write_bytes(private_pem(generate_private_key()))
    os.chmod(key_path, 0o644)
    cfg = make_config(tmp_path, kalshi={"env": "demo"})
    path = write_config(cfg, tmp_path / "kxfeed.toml")
    proc = spawn(
        "worker",
        "connector",
        "--config",
        str(path),
        env={"KALSHI_KEY_ID": KEY_ID, "KALSHI_PRIVATE_KEY_PATH": str(key_path)},
        stderr=subprocess.PIPE,
    )
    _, err = proc.communicate(timeout=30)
    text = err.decode()
    # The preflight refuses it before the worker starts: one line, EX_CONFIG (no restart loop).
    assert proc.returncode == EX_CONFIG and len(text.strip().splitlines()) == 1, text
    assert f"chmod 600 {key_path}" in text
    assert KEY_ID not in text and "BEGIN PRIVATE KEY" not in text


def test_demo_without_credentials_says_what_to_set(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, kalshi={"env": "demo"})
    path = write_config(cfg, tmp_path / "kxfeed.toml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KALSHI_")}
    proc = subprocess.run(
        kxfeed_cmd("worker", "connector", "--config", str(path)),
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        timeout=30,
    )
    assert proc.returncode == EX_CONFIG  # the preflight's answer to a setup mistake
    assert "KALSHI_KEY_ID" in proc.stderr.decode() and "KALSHI_PRIVATE_KEY_PATH" in proc.stderr.decode()
    assert "Traceback" not in proc.stderr.decode()
