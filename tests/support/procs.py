"""Running the kxfeed CLI as a child process, and waiting on conditions (never on sleeps)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent


def kxfeed_cmd(*args: str) -> list[str]:
    """The kxfeed CLI as a subprocess command (same interpreter as the tests)."""
    return [sys.executable, "-m", "services.cli.main", *args]


def spawn(*args: str, env: dict[str, str] | None = None, **kw: Any) -> subprocess.Popen[bytes]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.Popen(kxfeed_cmd(*args), cwd=ROOT, env=full_env, **kw)


def wait_until(predicate: Any, timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
