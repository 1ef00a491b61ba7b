"""Ports bound at run time, reported in the data dir.

``port = 0`` (``metrics_port`` of any worker, ``[sim] port``) means "any free port, reported":
the worker binds port 0 and writes the port the kernel gave it to
``<data_dir>/run/<worker>.<what>.port`` (atomically: a reader sees the old file or the new one,
never half). Whoever needs the port (the connector the simulator's, a test or a scraper a
worker's /metrics) reads it there. Binding port 0 is the only race-free way to get a free port:
a port picked first and bound later can be taken in between.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

RUN_DIR = "run"


def port_file(data_dir: str | Path, worker: str, what: str) -> Path:
    return Path(data_dir) / RUN_DIR / f"{worker}.{what}.port"


def report(data_dir: str | Path, worker: str, what: str, port: int) -> Path:
    """Record that ``worker`` serves ``what`` on ``port`` (replacing any earlier report)."""
    if not 0 < port < 65_536:
        raise ValueError(f"{worker} {what}: port {port} out of range")
    path = port_file(data_dir, worker, what)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(f"{port}\n")
    os.replace(tmp, path)
    return path


def reported(data_dir: str | Path, worker: str, what: str) -> int | None:
    """The port ``worker`` last reported for ``what``; None when there is no valid report."""
    try:
        raw = port_file(data_dir, worker, what).read_text().strip()
    except OSError:
        return None
    if not raw.isdigit() or not 0 < int(raw) < 65_536:
        return None
    return int(raw)


def withdraw(data_dir: str | Path, worker: str, what: str) -> None:
    """Remove a report at a clean stop (a port no longer served must not be read as live)."""
    with contextlib.suppress(FileNotFoundError):
        port_file(data_dir, worker, what).unlink()
