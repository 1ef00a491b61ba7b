"""Running the kxfeed CLI as a child process, and waiting on conditions (never on sleeps)."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent


def kxfeed_cmd(*args: str) -> list[str]:
    """The kxfeed CLI as a subprocess command (same interpreter as the tests)."""
    return [sys.executable, "-m", "services.cli.main", *args]


def spawn(*args: str, env: dict[str, str] | None = None, **kw: Any) -> subprocess.Popen[bytes]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.Popen(kxfeed_cmd(*args), cwd=ROOT, env=full_env, **kw)


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without kxfeed's own settings and credentials (``KXFEED_*``, ``KALSHI_*``,
    ``ODDS_API_KEY``) and with ``extra``: a child sees only what the test gives it."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KXFEED_", "KALSHI_")) and k != "ODDS_API_KEY"
    }
    env.update(extra)
    return env


def run_clean(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    """``kxfeed ARGS`` to its end in :func:`clean_env` (with ``env``), its output as text."""
    return subprocess.run(
        kxfeed_cmd(*args), cwd=ROOT, env=clean_env(**env), capture_output=True, text=True, timeout=timeout
    )


def wait_until(predicate: Any, timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def stop(p: subprocess.Popen[bytes], timeout: float = 15.0) -> int:
    """SIGTERM ``p`` and return its exit code; a process that ignores it is killed and the
    timeout re-raised, so a test that expects a clean stop fails loudly."""
    p.send_signal(signal.SIGTERM)
    try:
        return p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        raise


def stop_all(procs: Iterable[subprocess.Popen[bytes]], timeout: float = 15.0) -> list[int]:
    """Teardown: SIGTERM every process still running (in the order given: pass them reversed
    to stop consumers before what they consume), then wait for each; one that does not exit
    in ``timeout`` is killed (its code reads -9). Returns the exit codes in the same order."""
    procs = list(procs)
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    codes = []
    for p in procs:
        try:
            codes.append(p.wait(timeout))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            codes.append(-9)
    return codes


class OnTerminal:
    """The kxfeed CLI on a pseudo-terminal of its own, as a person runs it; ``screen`` is what
    it has written so far. Use as a context manager: leaving kills it if it still runs."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            kxfeed_cmd(*args), cwd=ROOT, env=env, stdin=slave, stdout=slave, stderr=slave
        )
        os.close(slave)  # the child holds it now: the master reads EOF/EIO once the child is gone
        self.screen = b""

    def read_until(self, done: Callable[[], bool], timeout: float) -> None:
        """Read what it writes until ``done()`` or ``timeout`` seconds (or its terminal closes)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not done():
            if select.select([self.master], [], [], 0.2)[0]:
                try:
                    self.screen += os.read(self.master, 65536)
                except OSError:
                    break

    def read_rest(self) -> None:
        """What it printed on the way out: read while more comes within half a second."""
        while select.select([self.master], [], [], 0.5)[0]:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                break
            if not chunk:
                break
            self.screen += chunk

    def __enter__(self) -> OnTerminal:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        os.close(self.master)
