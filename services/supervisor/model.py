"""The supervisor's data: child specs, the actions and events the core emits, child records.

Plain values shared by the pure core, the process shell and the config loader; no
decisions here (those are :mod:`services.supervisor.core`'s).
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from typing import Literal

import shared.backoff
from services.supervisor.policy import Intensity, RestartType
from shared.config import EX_CONFIG

State = Literal["pending", "starting", "running", "stopping", "down"]
ReadyMode = Literal["heartbeat", "control", "spawn"]
ALIVE: frozenset[str] = frozenset({"starting", "running", "stopping"})


@dataclass(frozen=True)
class ChildSpec:
    name: str
    command: tuple[str, ...]
    restart: RestartType = "permanent"
    ready: ReadyMode = "heartbeat"
    heartbeat: bool = True
    heartbeat_timeout_s: float = 10.0
    shutdown_timeout_s: float = 10.0
    ready_timeout_s: float = 30.0
    #: Control endpoint (for ``ready = "control"`` probes).
    control: str = ""
    #: Digest of everything else the child's behaviour depends on (its config section...).
    fingerprint: str = ""


@dataclass(frozen=True)
class Spawn:
    name: str


@dataclass(frozen=True)
class Kill:
    name: str
    sig: Literal["TERM", "KILL"]


Action = Spawn | Kill


@dataclass(frozen=True)
class SupervisorEvent:
    worker: str
    event: str
    detail: str = ""
    pid: int = 0
    exit_code: int | None = None
    reason: str = ""


@dataclass
class Child:
    spec: ChildSpec
    backoff: shared.backoff.Backoff
    #: This child's own restart budget (restarts in the last period).
    intensity: Intensity
    #: The pacing while parked.
    park: shared.backoff.Backoff
    state: State = "pending"
    pid: int = 0
    group: int = 0
    not_before: float = 0.0
    started_at: float = 0.0
    ready_at: float | None = None
    last_hb: float | None = None
    #: Why it will be stopped (scheduled, maybe not signalled yet); "" = not doomed.
    doomed: str = ""
    stop_reason: str = ""
    stop_deadline: float = 0.0
    killed: bool = False
    held: bool = False
    removed: bool = False
    restarts: int = 0
    #: Over its restart intensity: restarted with ``park`` while the others keep running.
    parked: bool = False
    parked_times: int = 0
    last_exit: int | None = None
    counters: dict[str, int] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)
    sample: tuple[float, dict[str, int]] | None = None

    @property
    def alive(self) -> bool:
        return self.state in ALIVE

    def last_seen(self) -> float:
        if self.last_hb is not None:
            return self.last_hb
        return self.ready_at if self.ready_at is not None else self.started_at


@dataclass
class StopSequence:
    """Children to stop one after another (each waits for the previous one to exit)."""

    names: list[str]
    reason: str


def exit_reason(code: int) -> str:
    if code < 0:
        return "killed"
    if code == EX_CONFIG:
        return "config"
    return "crash" if code else "exit"


def describe_exit(code: int) -> str:
    """What the process's return code says, as the operator would: a signal by its name."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    if code == EX_CONFIG:
        return f"exit status {code} (configuration error)"
    return f"exit status {code}"
