"""The supervisor's actor shell: child processes, heartbeats, probes, metrics, control.

Every decision is :class:`~services.supervisor.core.SupervisorCore`'s; this module turns its
actions into signals and ``Popen`` calls, and feeds it what the processes and the bus say.
Children run in their own process group (signals reach the whole group). The supervisor
is itself an :class:`~shared.actor.Actor` ("supervisor"): control socket for
``kxfeed status / restart / stop``, /metrics, and ``wevent.<worker>`` events on the bus,
journaled so the writer can store the ones published while it was down.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from services.supervisor.core import SupervisorCore
from services.supervisor.happenings import Happenings
from services.supervisor.model import Kill, Spawn
from services.supervisor.notes import ExitNotes
from services.supervisor.reporting import Reporter
from services.supervisor.specs import child_specs, policy_settings
from services.supervisor.status import restarts_in_window
from shared.actor import Actor
from shared.bus import RecordSink, Subscriber
from shared.commands.base import Command
from shared.commands.ping import Ping, PingReply
from shared.commands.reload import Reload
from shared.commands.restart import Restart
from shared.commands.status import Status
from shared.commands.stop_child import StopChild
from shared.commands.table import CommandHandler
from shared.config import EX_CONFIG, Config, ConfigError, load_config
from shared.control import ControlError, acall
from shared.journal import JournalWriter, open_journal
from shared.messages import Gap, Heartbeat, Signal, WorkerEvent

#: Seconds between two looks at the children (exits, deadlines, watchdog).
TICK_S = 0.05
PROBE_TIMEOUT_S = 0.5

StatusView = Callable[[dict[str, Any]], None]


def _same_process(hb_pid: int, child_pid: int) -> bool:
    """The heartbeat comes from the child we started (or from its process group)."""
    if hb_pid == child_pid:
        return True
    try:
        return os.getpgid(hb_pid) == child_pid
    except OSError:
        return False


class Supervisor(Actor):
    name = "supervisor"

    def __init__(
        self,
        config: Config,
        *,
        config_path: str | None = None,
        loader: Callable[[], Config] | None = None,
        child_args: Sequence[str] = (),
        child_log_dir: Path | None = None,
        views: Sequence[StatusView] = (),
        view_interval_s: float = 0.5,
    ) -> None:
        super().__init__(config)
        self.config_path = config_path
        #: How SIGHUP re-reads the config (the CLI adds its overrides on top of the file).
        self.loader = loader or (lambda: load_config(config_path))
        self.child_args = tuple(child_args)
        self.child_log_dir = child_log_dir
        self.core = SupervisorCore(child_specs(config, config_path, self.child_args), policy_settings(config))
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.report = Reporter(self.log, self.worker_id, self._publish)
        #: Gaps, outages, reconnects... from the heartbeats and bus messages read here.
        self.happenings = Happenings()
        self.views = list(views)
        self.view_interval_s = view_interval_s
        self._last_view = 0.0
        self._probing: set[str] = set()
        self._reload_requested = False
        self._journal: JournalWriter | None = None
        self._hb_sub: Subscriber | None = None
        #: Where each child leaves its exit note (``$KXFEED_EXIT_NOTE``), made in setup.
        self._notes: ExitNotes | None = None

    # ---- Actor hooks -----------------------------------------------------------------------
    def journal(self) -> RecordSink | None:
        # Kept to close it last; the Actor runs its retention like every durable producer's.
        self._journal = open_journal(self.config, self.worker_id)
        return self._journal

    async def setup(self) -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._on_sighup)
        self._notes = ExitNotes(self.log)
        # Heartbeats for the watchdog; gaps and signals (rare) for the live screen's recent events.
        self._hb_sub = self.subscriber(["hb.", "gap.", "signal."])
        # Without heartbeats the watchdog would kill every child: a listener that dies fails us.
        self.spawn(self._listen(), name="heartbeats")
        self.log.info(
            "supervising",
            extra={"ctx": {"children": ",".join(self.core.order), "strategy": self.core.settings.strategy}},
        )

    async def main(self) -> None:
        while not self.stopping.is_set() and not self.core.done:
            self._step()
            await asyncio.sleep(TICK_S)

    async def drain(self) -> None:
        self.core.shutdown(time.monotonic())
        while not self.core.done:
            self._step()
            await asyncio.sleep(TICK_S)
        self._step()

    async def teardown(self) -> None:
        # Only reached with live children when the drain deadline passed: nothing may outlive us.
        for name, proc in list(self.procs.items()):
            self.log.error(
                "child still running at exit: SIGKILL", extra={"ctx": {"worker": name, "pid": proc.pid}}
            )
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(2.0)
        if self._hb_sub is not None:
            self._hb_sub.close()
        if self._notes is not None:
            self._notes.close()
        self._show(force=True)

    def stats(self) -> dict[str, int]:
        children = self.core.children.values()
        return {
            "children": len(children),
            "running": sum(1 for c in children if c.state == "running"),
            "restarts": sum(c.restarts for c in children),
        }

    def commands(self) -> dict[type[Command], CommandHandler]:
        return {
            Status: self._on_status,
            Restart: self._on_restart,
            StopChild: self._on_stop_child,
            Reload: self._on_reload,
        }

    async def _on_status(self, _: Status) -> Any:
        return self.status()

    async def _on_restart(self, cmd: Restart) -> str:
        now = time.monotonic()
        self.core.restart(cmd.name, now)
        self._apply(now)
        return f"restarting {cmd.name}"

    async def _on_stop_child(self, cmd: StopChild) -> str:
        now = time.monotonic()
        self.core.stop_child(cmd.name, now)
        self._apply(now)
        return f"stopping {cmd.name}"

    async def _on_reload(self, _: Reload) -> str:
        self._reload_requested = True
        return "reloading"

    async def serve(self) -> int:
        try:
            return await super().serve()
        finally:
            if self._journal is not None:
                self._journal.close()

    def exit_status(self, code: int) -> int:
        # The supervisor's own failure first; else what the children's fate decided (an
        # escalation, a config error): logged as "stopped exit_code=..." and returned alike.
        return code or self.core.exit_code

    # ---- the loop --------------------------------------------------------------------------
    def _step(self) -> None:
        now = time.monotonic()
        if self._reload_requested:
            self._reload_requested = False
            self._reload(now)
        self._reap(now)
        self.core.tick(now)
        self._apply(now)
        for name in self.core.needs_probe():
            if name not in self._probing:
                self._probing.add(name)
                self.spawn(self._probe(name), name=f"probe-{name}")
        self.ready = not self.core.shutting_down and all(
            c.state == "running" for c in self.core.children.values() if not c.held
        )
        self._show()

    def _apply(self, now: float) -> None:
        """Carry out what the core decided, until it has nothing more to say."""
        while True:
            actions, events = self.core.take()
            if not actions and not events:
                self.report.sync(self.core.children, now)
                return
            for e in events:
                self.report.record(e)
            for a in actions:
                if isinstance(a, Spawn):
                    self._spawn(a.name, now)
                elif isinstance(a, Kill):
                    self._signal(a.name, a.sig)

    def _spawn(self, name: str, now: float) -> None:
        spec = self.core.children[name].spec
        out: IO[bytes] | None = None
        env = {**os.environ, **(self._notes.env_for(name) if self._notes is not None else {})}
        try:
            if self.child_log_dir is not None:
                self.child_log_dir.mkdir(parents=True, exist_ok=True)
                out = open(self.child_log_dir / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it
            proc = subprocess.Popen(
                spec.command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT if out is not None else None,
                start_new_session=True,
                env=env,
            )
        except OSError as exc:
            self.core.spawn_failed(name, f"{spec.command[0]}: {exc.strerror or exc}", now)
            return
        finally:
            if out is not None:
                out.close()
        self.procs[name] = proc
        self.core.spawned(name, proc.pid, now)

    def _signal(self, name: str, sig: str) -> None:
        proc = self.procs.get(name)
        if proc is None:
            return
        try:
            if sig == "TERM":
                os.killpg(proc.pid, signal.SIGTERM)
                # A stopped (SIGSTOP) process only acts on SIGTERM once it runs again.
                os.killpg(proc.pid, signal.SIGCONT)
            else:
                os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # already gone: the next reap reports its exit

    def _reap(self, now: float) -> None:
        for name, proc in list(self.procs.items()):
            code = proc.poll()
            if code is not None:
                del self.procs[name]
                note = self._notes.read(name) if self._notes is not None and code == EX_CONFIG else ""
                self.core.exited(name, code, now, note)
        self._apply(now)

    async def _probe(self, name: str) -> None:
        child = self.core.children.get(name)
        try:
            if child is None or not child.pid:
                return
            pid = child.pid
            try:
                result: PingReply = await acall(child.spec.control, Ping(), timeout_s=PROBE_TIMEOUT_S)
            except ControlError:
                await asyncio.sleep(TICK_S)
                return
            # Another process holding the port (a stale run) must not pass for our child.
            if result.pid == pid and child.pid == pid:
                now = time.monotonic()
                self.core.probe_ok(name, now)
                self._apply(now)
        finally:
            self._probing.discard(name)

    async def _listen(self) -> None:
        assert self._hb_sub is not None
        while True:
            batch = await self._hb_sub.recv()
            now = time.monotonic()
            for msg in batch:
                if isinstance(msg, Gap):
                    for note in self.happenings.gap(msg):
                        self.report.note(note)
                elif isinstance(msg, Signal):
                    self.happenings.on_signal(msg)
                elif isinstance(msg, Heartbeat):
                    self._child_heartbeat(msg, now)
            self._apply(now)

    def _child_heartbeat(self, msg: Heartbeat, now: float) -> None:
        child = self.core.children.get(msg.worker)
        if child is None or not child.pid or not _same_process(msg.pid, child.pid):
            return
        was_alive = child.state in ("starting", "running")
        self.core.heartbeat(msg.worker, msg.ready, msg.counters, now)
        if was_alive:
            for note in self.happenings.heartbeat(msg.worker, child.pid, msg.counters):
                self.report.note(note)

    # ---- events, metrics, views ------------------------------------------------------------
    def _publish(self, event: WorkerEvent) -> None:
        if self.pub is not None:
            self.pub.publish(event)

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        s = self.core.settings
        return {
            "supervisor": {
                "pid": os.getpid(),
                "uptime_s": round(self.uptime_ms() / 1000, 3),
                "strategy": s.strategy,
                "restarts_in_window": restarts_in_window(self.core.children, now),
                "max_restarts": s.max_restarts,
                "period_s": s.period_s,
                "on_intensity": s.on_intensity,
                "parked": [n for n in self.core.order if self.core.children[n].parked],
                "shutting_down": self.core.shutting_down,
                "stop_cause": self.core.stop_cause,
                "config": self.config_path or "",
            },
            "workers": self.core.status(now),
            "events": list(self.report.recent),
            # The live screen's market line: the newest arb signal seen on the bus.
            "signal": self.happenings.signal,
        }

    def _show(self, force: bool = False) -> None:
        if not self.views:
            return
        now = time.monotonic()
        if not force and now - self._last_view < self.view_interval_s:
            return
        self._last_view = now
        snapshot = self.status()
        for view in self.views:
            view(snapshot)

    # ---- reload ----------------------------------------------------------------------------
    def _on_sighup(self) -> None:
        self._reload_requested = True

    def _reload(self, now: float) -> None:
        try:
            cfg = self.loader()
            specs = child_specs(cfg, self.config_path, self.child_args)
        except ConfigError as exc:
            self.log.error(
                "reload refused: config error, keeping the running config", extra={"ctx": {"error": str(exc)}}
            )
            return
        if (cfg.supervisor.control, cfg.supervisor.metrics_port) != (
            self.settings.control,
            self.settings.metrics_port,
        ):
            self.log.warning("reload: the supervisor's own control/metrics endpoints change only on restart")
        touched = self.core.reload(specs, policy_settings(cfg), now)
        self.config = cfg
        self.log.info("config reloaded", extra={"ctx": {"changed": ",".join(touched) or "none"}})
        self._apply(now)


WORKER = Supervisor
