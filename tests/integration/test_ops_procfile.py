"""The Procfile: one line per worker, and ``honcho start`` runs the pipeline against the simulator."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from honcho.environ import parse_procfile

from services import registry
from shared.control import ControlError, request
from tests.integration.test_supervisor_pipeline import committed_streams, journaled_streams
from tests.support.config import make_config, write_config
from tests.support.procs import ROOT, wait_until

PROCFILE = ROOT / "Procfile"
RUN_S = 10.0


def test_procfile_has_one_line_per_worker() -> None:
    text = PROCFILE.read_text()
    processes = parse_procfile(text).processes
    default = [n for n in registry.WORKER_MODULES if n not in registry.OPT_IN]
    assert list(processes) == default, "every default worker, in start order"
    for name, command in processes.items():
        # exec: the worker itself gets honcho's SIGTERM (a shell in between would die of it).
        assert command == f"exec kxfeed worker {name}"
    for name in registry.OPT_IN:  # there to uncomment once its service is set up
        assert f"\n# {name}: exec kxfeed worker {name}\n" in text, name


@pytest.mark.slow
def test_honcho_start_runs_the_pipeline_against_the_sim(tmp_path: Path) -> None:
    missing = [n for n in parse_procfile(PROCFILE.read_text()).processes if n not in registry.available()]
    if missing:
        pytest.skip(f"workers not installed yet: {missing}")
    honcho = shutil.which("honcho", path=str(Path(sys.executable).parent))
    assert honcho, "honcho is a dev dependency of the project"
    cfg = make_config(tmp_path, sim={"rate": 200.0, "markets": 20})
    path = write_config(cfg, tmp_path / "kx.toml")
    env = {
        **os.environ,
        "KXFEED_CONFIG": str(path),
        # The Procfile says `kxfeed`: the venv's bin must come first, as in an activated venv.
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }
    log = tmp_path / "honcho.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [honcho, "start", "-f", str(PROCFILE), "-d", str(ROOT)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            started = time.monotonic()

            def all_ready() -> bool:
                try:
                    names = registry.default_workers("sim")
                    answers = [request(cfg.worker(n).control, "stats", timeout_s=1.0) for n in names]
                except ControlError:
                    return False
                return all(a.get("ready") for a in answers)

            assert wait_until(all_ready, 60), log.read_text()
            time.sleep(max(0.0, RUN_S - (time.monotonic() - started)))
            assert proc.poll() is None, "honcho stops everything when one process dies:\n" + log.read_text()
            stats = request(cfg.worker("connector").control, "stats", timeout_s=2.0)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
    text = log.read_text()
    assert stats.get("connected") == 1, stats
    for name in parse_procfile(PROCFILE.read_text()).processes:
        assert f"{name}.1 stopped (rc=0)" in text, f"{name} did not drain and exit 0 on SIGTERM:\n{text}"
    # Data went all the way: the connector journaled deltas and the writer committed them.
    # (honcho stops every process at once, so the last moments may only be in the journal:
    # the writer replays them on its next start. Ordered shutdown is `kxfeed up`'s job.)
    committed = committed_streams(tmp_path / "kxfeed.db")
    journaled = journaled_streams(Path(cfg.journal.dir) / "connector")
    deltas = [k for k in journaled if k[2] == "delta"]
    assert deltas and all(committed.get(k, 0) > 0 for k in deltas)
    with sqlite3.connect(tmp_path / "kxfeed.db") as conn:
        (rows,) = conn.execute("SELECT count(*) FROM book_deltas").fetchone()
    assert rows > 0
