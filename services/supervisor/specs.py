"""Child specs from the config: which children, in which order, started how.

With no ``[[supervisor.children]]`` the children are ``supervisor.workers`` (or every
worker this install has, in the registry's start order, the simulator only for env sim), each run as
``kxfeed worker NAME`` with the supervisor's own config file. A worker that is not part
of this install is an error, never a child that pretends to run.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence

import msgspec

from services import registry
from services.supervisor.model import ChildSpec, ReadyMode
from services.supervisor.policy import PolicySettings
from shared.config import Config, ConfigError, SupervisorChild, WorkerBase
from shared.kalshi.endpoints import effective_env


def policy_settings(cfg: Config) -> PolicySettings:
    """The restart policy of ``[supervisor]``; raises ConfigError on values it cannot run with."""
    s = cfg.supervisor
    if s.max_restarts < 0 or not 0 < s.max_restarts_period_s < 1e9:
        raise ConfigError(
            f"[supervisor] max_restarts ({s.max_restarts}) must be >= 0 and max_restarts_period_s "
            f"({s.max_restarts_period_s}) a positive number of seconds"
        )
    if not 0 < s.park_backoff_initial_s <= s.park_backoff_max_s < 1e9:
        raise ConfigError(
            f"[supervisor] park backoff needs 0 < park_backoff_initial_s ({s.park_backoff_initial_s}) "
            f"<= park_backoff_max_s ({s.park_backoff_max_s})"
        )
    if not 0.0 <= s.backoff_jitter <= 1.0:
        raise ConfigError(f"[supervisor] backoff_jitter ({s.backoff_jitter}) must be within 0..1")
    return PolicySettings(
        strategy=s.strategy,
        max_restarts=s.max_restarts,
        period_s=s.max_restarts_period_s,
        backoff_initial_s=s.backoff_initial_s,
        backoff_max_s=s.backoff_max_s,
        backoff_multiplier=s.backoff_multiplier,
        backoff_jitter=s.backoff_jitter,
        backoff_reset_s=s.backoff_reset_s,
        on_intensity=s.on_intensity,
        park_backoff_initial_s=s.park_backoff_initial_s,
        park_backoff_max_s=s.park_backoff_max_s,
    )


def worker_command(name: str, config_path: str | None, extra_args: Sequence[str] = ()) -> tuple[str, ...]:
    """``kxfeed worker NAME`` run by this very interpreter (the venv the supervisor runs in)."""
    cmd = [sys.executable, "-m", "services.cli.main", "worker", name]
    if config_path:
        cmd += ["--config", config_path]
    return (*cmd, *extra_args)


def _fingerprint(cfg: Config, section: WorkerBase | None, command: Sequence[str]) -> str:
    """What a child's behaviour depends on besides its spec: its own section and the shared
    sections (bus, db, journal, kalshi, log...), not other workers' sections."""
    shared = {
        f.name: getattr(cfg, f.name)
        for f in msgspec.structs.fields(Config)
        if not isinstance(getattr(cfg, f.name), WorkerBase)
    }
    blob = msgspec.json.encode({"section": section, "shared": shared, "command": list(command)})
    return hashlib.sha256(blob).hexdigest()[:16]


def _section(cfg: Config, name: str) -> WorkerBase | None:
    try:
        return cfg.worker(name)
    except ConfigError:
        return None


def _spec(
    cfg: Config,
    child: SupervisorChild,
    available: Sequence[str],
    config_path: str | None,
    extra_args: Sequence[str],
) -> ChildSpec:
    sup = cfg.supervisor
    name = child.name
    section = _section(cfg, name)
    if child.command:
        command = tuple(child.command)
    elif name in available:
        command = worker_command(name, config_path, extra_args)
    elif name in registry.WORKER_MODULES:
        raise ConfigError(
            f"[supervisor] worker {name!r} is not part of this install; available: {', '.join(available)}"
        )
    else:
        raise ConfigError(
            f"[supervisor] child {name!r} is not a worker ({', '.join(available)}) and has no command"
        )
    ready: ReadyMode
    if child.ready:
        ready = child.ready
    elif name == "bus" and section is not None and section.control:
        ready = "control"
    else:
        ready = "heartbeat" if child.heartbeat else "spawn"
    control = section.control if section is not None else ""
    if ready == "control" and not control:
        raise ConfigError(
            f"[supervisor] child {name!r}: ready = 'control' needs a worker section with a control socket"
        )
    if ready == "heartbeat" and not child.heartbeat:
        raise ConfigError(f"[supervisor] child {name!r}: ready = 'heartbeat' but heartbeat = false")
    hb_timeout = child.heartbeat_timeout_s or sup.heartbeat_timeout_s
    if child.heartbeat and section is not None and hb_timeout < 2 * section.heartbeat_interval_s:
        raise ConfigError(
            f"[supervisor] child {name!r}: heartbeat timeout {hb_timeout}s is under twice its "
            f"heartbeat interval ({section.heartbeat_interval_s}s): the watchdog would kill a healthy worker"
        )
    return ChildSpec(
        # A worker the supervisor starts itself is watched under the id it will heartbeat as.
        name=name if child.command else registry.worker_id(cfg, name),
        command=command,
        restart=child.restart,
        ready=ready,
        heartbeat=child.heartbeat,
        heartbeat_timeout_s=hb_timeout,
        shutdown_timeout_s=child.shutdown_timeout_s or sup.shutdown_timeout_s,
        ready_timeout_s=child.ready_timeout_s or sup.ready_timeout_s,
        control=control,
        fingerprint=_fingerprint(cfg, section, command),
    )


def child_specs(
    cfg: Config,
    config_path: str | None,
    extra_args: Sequence[str] = (),
    available: Sequence[str] | None = None,
) -> list[ChildSpec]:
    """The supervisor's children in start order. Raises ConfigError when one cannot exist."""
    available = registry.available() if available is None else list(available)
    sup = cfg.supervisor
    if sup.children:
        children = list(sup.children)
    else:
        names = list(sup.workers) or registry.default_workers(
            effective_env(cfg), available, registry.opted_in(cfg)
        )
        unknown = [n for n in names if n not in registry.WORKER_MODULES]
        if unknown:
            known = ", ".join(registry.WORKER_MODULES)
            raise ConfigError(f"[supervisor] workers: unknown {', '.join(unknown)}; known: {known}")
        children = [SupervisorChild(name=n) for n in names]
    specs = [_spec(cfg, c, available, config_path, extra_args) for c in children]
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"[supervisor] children named twice: {', '.join(dupes)}")
    if not specs:
        raise ConfigError("[supervisor] no child to run (no worker is installed and no child is configured)")
    return specs
