"""``kxfeed up``'s live screen as a person sees it: the real pipeline (simulator, SQLite) in a
tmux pane, a gap injected at the simulator and a worker stopped with ``kxfeed stop``, and the
pane read back with ``tmux capture-pane``."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from services import registry
from tests.support.config import make_config, write_config
from tests.support.procs import ROOT, kxfeed_cmd, wait_until

pytestmark = [
    pytest.mark.slow(waits=True),
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]

PIPELINE = {"bus", "sim", "writer", "orderbook", "connector"}
#: The worker this test stops (not one the gap's recovery needs).
STOPPED = "poller"


class Pane:
    """One tmux server of our own (its own socket), one session running a command."""

    def __init__(self, command: list[str]) -> None:
        self.socket = f"kxscreen-{uuid.uuid4().hex[:12]}"
        # The pane survives the command so its last words (and exit code) stay readable.
        shell = f"{shlex.join(command)}; echo kxfeed-up-exited-$?; exec sleep 600"
        self.tmux("new-session", "-d", "-x", "160", "-y", "50", "-s", "up", "-c", str(ROOT), shell)

    def tmux(self, *args: str) -> str:
        out = subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
        return out.stdout

    def text(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "up")

    def lines(self) -> list[str]:
        return self.text().splitlines()

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=20)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(kxfeed_cmd(*args), cwd=ROOT, capture_output=True, text=True, timeout=60)


def _row(lines: list[str], worker: str) -> list[str]:
    return next((line.split() for line in lines if line.split()[:1] == [worker]), [])


def _recent(lines: list[str]) -> list[str]:
    if "recent:" not in lines:
        return []
    start = lines.index("recent:") + 1
    return [line.strip() for line in lines[start:] if line.startswith("  ")]


def test_the_live_screen_shows_a_gap_a_stopped_worker_the_legend_and_the_market(tmp_path: Path) -> None:
    names = registry.default_workers("sim")
    if not PIPELINE | {STOPPED} <= set(names):
        pytest.skip(f"this install lacks part of the pipeline: {names}")
    cfg = make_config(
        tmp_path,
        supervisor={"shutdown_timeout_s": 15.0, "ready_timeout_s": 60.0},
        sim={"rate": 50.0, "markets": 12},
    )
    path = write_config(cfg, tmp_path / "kx.toml")
    pane = Pane([sys.executable, "-m", "services.cli.main", "up", "--config", str(path)])
    try:
        # Every worker running, and the market line counting books the order book built.
        def all_running() -> bool:
            lines = pane.lines()
            return all("running" in _row(lines, n) for n in names) and any(
                line.startswith("market: books ") and " valid" in line and "books 0/" not in line
                for line in lines
            )

        assert wait_until(all_running, 120, interval=0.5), pane.text()
        lines = pane.lines()
        assert all(len(line) <= 160 for line in lines)
        head = lines[0]
        assert head.startswith("kxfeed supervisor pid ")
        assert f"{len(names)}/{len(names)} workers ready" in head
        assert len(head) <= 100, "the headline stays readable on a 100-column terminal"
        market = next(line for line in lines if line.startswith("market: "))
        assert "deltas/s" in market and "rows/s" in market and ("signal" in market), market
        legend = " ".join(lines[lines.index(next(x for x in lines if x.startswith("WORKER"))) :])
        for column in ("PID", "UPTIME", "RESTARTS", "HB AGE", "MSG/S", "LAST EXIT", "-: none"):
            assert column in legend, f"{column} is explained under the table"

        out = _run("sim", "inject", "gap", "count=2", "--config", str(path))
        assert out.returncode == 0, out.stderr

        def gap_shown() -> bool:
            recent = _recent(pane.lines())
            return any(" connector gap " in f" {e} " and "sid " in e for e in recent)

        assert wait_until(gap_shown, 60, interval=0.5), pane.text()
        assert wait_until(
            lambda: any(" recovered " in f" {e} " and "gap" in e for e in _recent(pane.lines())), 60, 0.5
        ), pane.text()
        gap_lines = [e for e in _recent(pane.lines()) if " connector gap " in f" {e} "]
        assert len(gap_lines) == 1, f"the gap is shown once: {gap_lines}"

        out = _run("stop", STOPPED, "--config", str(path))
        assert out.returncode == 0, out.stderr

        def held_shown() -> bool:
            lines = pane.lines()
            row = _row(lines, STOPPED)
            return (
                row[1:3] == ["-", "held"]
                and any(line.strip().startswith(f"{STOPPED}: held") for line in lines)
                and any(f"{STOPPED} held" in e for e in _recent(lines))
            )

        assert wait_until(held_shown, 60, interval=0.5), pane.text()
        lines = pane.lines()
        assert f"HELD: {STOPPED}" in lines[0], lines[0]
        assert not any(line.strip().startswith(f"{STOPPED}: ") and "=" in line for line in lines), (
            "no stale counters for the held worker"
        )

        # The same screen on a 100-column terminal: redrawn to fit, the headline whole.
        pane.tmux("resize-window", "-t", "up", "-x", "100", "-y", "50")

        def fits_100() -> bool:
            lines = pane.lines()
            heads = [x for x in lines if x.startswith("kxfeed supervisor pid ")]
            # Redrawn at the new width (the screen keeps the last column free), nothing left
            # over from the wider frames.
            return heads == lines[:1] and all(len(x) < 100 for x in lines) and "LAST EXIT" in "".join(lines)

        assert wait_until(fits_100, 30, interval=0.5), pane.text()
        head = pane.lines()[0]
        assert head.startswith("kxfeed supervisor pid ") and head.endswith(f"HELD: {STOPPED}"), head

        pane.tmux("send-keys", "-t", "up", "C-c")
        assert wait_until(lambda: "kxfeed-up-exited-" in pane.text(), 90, interval=0.5), pane.text()
        assert "kxfeed-up-exited-0" in pane.text(), pane.text()
    finally:
        pane.kill()
