"""The worker base: lifecycle, heartbeat, control socket, metrics, signals.

A worker subclasses :class:`Actor`, sets ``name``, and fills in the hooks:

- ``setup()``     open what the worker needs (subscribers, clients);
- ``main()``      the work; runs until ``self.stopping`` is set (or returns);
- ``drain()``     finish in-flight work; bounded by ``drain_deadline_s``;
- ``teardown()``  close resources;
- ``stats()``     key counters, sent in every heartbeat and by ``stats``;
- ``commands()``  the worker's control commands: ``{CommandClass: async handler}``, each
  class from :mod:`shared.commands` (one module per command); the handler gets a decoded,
  validated instance. ``ping``, ``stats`` and ``stop`` are the Actor's own. A handler raises
  ``ValueError`` or ``KeyError`` for a request it refuses (the caller's mistake); anything
  else is also logged as a worker failure with its traceback. See :mod:`shared.control_server`.

:meth:`Actor.spawn` is the one way to start a background loop: the tasks form one
supervised group, and one that raises fails the worker like a crash in ``main``.

:meth:`Actor.run` is the process entry point: uvloop, SIGTERM/SIGINT -> drain (never after a failure) ->
exit 0; a crash in ``main``, a spawned task, ``setup`` or ``teardown`` logs its traceback
and exits 1 (the supervisor restarts it, the writer replays); a
:class:`~shared.config.ConfigError` logs its one line and exits ``EX_CONFIG`` (78), which
the supervisor does not restart.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import time
from collections.abc import Coroutine
from typing import Any, ClassVar, TypeVar

import uvloop
import zmq
from prometheus_client import Gauge, start_http_server

from shared import ports
from shared.bus import Publisher, RecordSink, Subscriber
from shared.commands.base import Command
from shared.commands.ping import Ping, PingReply
from shared.commands.stats import Stats
from shared.commands.stop import Stop
from shared.commands.table import CommandHandler, CommandTable
from shared.config import EX_CONFIG, EXIT_NOTE_ENV, Config, ConfigError, WorkerBase
from shared.control_server import serve_control
from shared.curve import Curve, endpoints_of, install
from shared.journal import JournalWriter, open_journal
from shared.log import get_logger
from shared.messages import Heartbeat, WorkerEvent
from shared.tasks import Supervised, finish

UPTIME = Gauge("kxfeed_uptime_seconds", "Seconds since this worker process started", ["worker"])
READY = Gauge("kxfeed_ready", "1 when this worker reports ready", ["worker"])

__all__ = ["READY", "UPTIME", "Actor"]

T = TypeVar("T")


class _BackgroundFailed(Exception):
    """A spawned task failed while the lifecycle waited for something else (already logged)."""


def _exit_code(failure: BaseException | None) -> int:
    if failure is None:
        return 0
    return EX_CONFIG if isinstance(failure, ConfigError) else 1


def write_exit_note(message: str, log: logging.Logger) -> None:
    """Leave ``message`` where the supervisor looks for it (``$KXFEED_EXIT_NOTE``), if it asked."""
    path = os.environ.get(EXIT_NOTE_ENV, "")
    if not path:
        return
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(message[:2000] + "\n")
    except OSError as exc:
        log.warning("cannot write the exit note", extra={"ctx": {"path": path, "error": exc.strerror}})


class Actor:
    name: ClassVar[str] = "actor"
    #: Primary-data producers set this: every durable frame is journaled before it is published.
    durable: ClassVar[bool] = False

    def __init__(self, config: Config, *, instance: str = "") -> None:
        self.config = config
        self.instance = instance
        self.settings: WorkerBase = config.worker(self.name)
        self.worker_id = f"{self.name}-{instance}" if instance else self.name
        self.log = get_logger(self.worker_id)
        self.started_ns = time.time_ns()
        self._started_mono = time.monotonic()
        self.ready = False
        self.stopping = asyncio.Event()
        self.zctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.pub: Publisher | None = None
        # Keys for what this worker binds or connects beyond loopback, read now: a missing or
        # unusable one is a ConfigError before anything starts (shared/curve.py).
        curve = Curve(config.curve)
        curve.require(*endpoints_of(config, self.name))
        self.curve: Curve = install(curve)
        #: The background tasks; its first failure (or main's, setup's...) decides the exit code.
        self.tasks = Supervised(self.worker_id, self._fail)
        self._set_up = False
        self._metrics_server: Any = None
        UPTIME.labels(self.worker_id).set_function(lambda: time.monotonic() - self._started_mono)
        READY.labels(self.worker_id).set_function(lambda: 1.0 if self.ready else 0.0)

    # ---- hooks -----------------------------------------------------------------------------
    @classmethod
    def check_config(cls, config: Config) -> list[str]:
        """Problems with ``config`` this worker would fail on at start, one line each (pure).

        The CLI asks before it starts a worker, so a bad setting is answered in the terminal
        instead of by a crash loop.
        """
        return []

    async def setup(self) -> None:
        """Open resources. Runs before ``main``."""

    async def main(self) -> None:
        """The worker's work. The default idles until asked to stop."""
        await self.stopping.wait()

    async def drain(self) -> None:
        """Finish in-flight work after a stop request (bounded by the drain deadline)."""

    async def teardown(self) -> None:
        """Close resources."""

    def stats(self) -> dict[str, int]:
        return {}

    def commands(self) -> dict[type[Command], CommandHandler]:
        """The worker's own control commands and their handlers (see the module docstring)."""
        return {}

    def command_table(self) -> CommandTable:
        """Every command this worker answers: the Actor's own, then :meth:`commands`."""
        table = CommandTable()
        table.register(Ping, self._ping)
        table.register(Stats, self._stats)
        table.register(Stop, self._stop)
        for cls, handler in self.commands().items():
            table.register(cls, handler)
        return table

    def journal(self) -> RecordSink | None:
        """The journal the publisher writes durable frames to before sending them.

        Durable producers (``durable = True``) journal into ``<journal.dir>/<worker_id>/``.
        """
        if not self.durable:
            return None
        return open_journal(self.config, self.worker_id)

    # ---- helpers ---------------------------------------------------------------------------
    def subscriber(self, prefixes: list[str], **kw: Any) -> Subscriber:
        bus = self.config.bus
        kw.setdefault("curve", self.curve)
        return Subscriber(self.zctx, bus.xpub, prefixes, rcvhwm=bus.rcvhwm, max_batch=bus.max_batch, **kw)

    def uptime_ms(self) -> int:
        return int((time.monotonic() - self._started_mono) * 1000)

    def request_stop(self) -> None:
        self.stopping.set()

    def event(self, event: str, detail: str = "", exit_code: int | None = None) -> None:
        if self.pub is not None:
            self.pub.publish(
                WorkerEvent(
                    worker=self.worker_id,
                    event=event,
                    pid=os.getpid(),
                    exit_code=exit_code,
                    detail=detail,
                    ts_recv=time.time_ns(),
                )
            )

    # ---- lifecycle -------------------------------------------------------------------------
    async def _journal_upkeep(self, journal: JournalWriter) -> None:
        # Retention and age-rotation must run while the worker is quiet too: an idle
        # publisher's last segment would otherwise be kept for ever.
        interval = max(0.1, min(1.0, self.config.journal.prune_interval_s))
        while True:
            await asyncio.sleep(interval)
            journal.upkeep()

    async def _heartbeat(self) -> None:
        assert self.pub is not None
        interval = self.settings.heartbeat_interval_s
        while True:
            self.pub.publish(
                Heartbeat(
                    worker=self.worker_id,
                    pid=os.getpid(),
                    uptime_ms=self.uptime_ms(),
                    ready=self.ready,
                    counters=self.stats(),
                    ts_recv=time.time_ns(),
                )
            )
            self.curve.poll()
            await asyncio.sleep(interval)

    async def _control(self) -> None:
        await serve_control(
            self.settings.control,
            self.worker_id,
            self.command_table(),
            self.log,
            max_msg_bytes=self.config.control.max_msg_bytes,
            curve=self.curve,
            on_bound=self._control_bound,
        )

    def _control_bound(self, bound: str) -> None:
        # A control endpoint on port 0 or * is any free port, reported like /metrics' port 0.
        if self.settings.control.startswith("tcp://") and self.settings.control.endswith((":0", ":*")):
            ports.report(self.config.data_dir, self.worker_id, "control", int(bound.rpartition(":")[2]))

    async def _ping(self, _: Ping) -> PingReply:
        return PingReply(worker=self.worker_id, pid=os.getpid())

    async def _stats(self, _: Stats) -> dict[str, Any]:
        return {"ready": self.ready, "uptime_ms": self.uptime_ms(), **self.stats()}

    async def _stop(self, _: Stop) -> str:
        self.request_stop()
        return "stopping"

    def _start_metrics(self) -> None:
        # metrics_port: > 0 that port; 0 any free port, reported in the data dir
        # (shared/ports.py); < 0 no /metrics at all.
        port = self.settings.metrics_port
        if port >= 0:
            self._metrics_server, _ = start_http_server(port, self.settings.metrics_host)
            if port == 0:
                bound = int(self._metrics_server.server_port)
                ports.report(self.config.data_dir, self.worker_id, "metrics", bound)
                self.log.info("serving /metrics", extra={"ctx": {"port": bound}})

    # ---- supervised tasks ------------------------------------------------------------------
    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        """Run ``coro`` as one of this worker's background tasks: the one way to start a loop.

        A task that raises fails the whole worker (its traceback logged at once, exit 1 or
        EX_CONFIG), so a loop never dies while the worker keeps heart-beating "ready". A task
        that returns is simply done. Every task left is cancelled and awaited at exit.
        """
        return self.tasks.spawn(coro, name=name)

    def _fail(self, what: str, exc: BaseException) -> None:
        """Log a failure once, with its traceback (a config error: its one line)."""
        if isinstance(exc, ConfigError):
            self._config_error(exc)
        else:
            self.log.error(what, exc_info=exc, extra={"ctx": {"error": repr(exc)}})

    def _failed_with(self, what: str, exc: BaseException) -> None:
        """A failure outside the task group (main, setup, teardown): logged and kept alike."""
        self.tasks.report(what, exc)

    def _config_error(self, exc: ConfigError) -> None:
        # One line and no traceback: the message says what to do. The supervisor shows it.
        message = " ".join(str(exc).split()) or type(exc).__name__
        self.log.error(f"config error: {message}", extra={"ctx": {"exit_code": EX_CONFIG}})
        write_exit_note(f"{self.worker_id}: {message}", self.log)

    async def _unless_failed(self, aw: Coroutine[Any, Any, T]) -> T:
        """Await ``aw``, or stop waiting as soon as a background task has failed."""
        work = asyncio.create_task(aw)
        failed = asyncio.create_task(self.tasks.failed.wait())
        try:
            await asyncio.wait({work, failed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            failed.cancel()
            if not work.done():
                work.cancel()
                await asyncio.wait({work})
        if work.cancelled():
            raise _BackgroundFailed from self.tasks.failure
        return work.result()

    def exit_status(self, code: int) -> int:
        """The process's exit status given the lifecycle's ``code``; subclasses may refine it."""
        return code

    async def serve(self) -> int:
        """Run the whole lifecycle; returns the process exit code.

        0 after a requested stop; 1 when ``main``, a spawned task, ``setup``, ``drain`` or
        ``teardown`` raised; :data:`~shared.config.EX_CONFIG` when that was a ConfigError.
        """
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        self._start_metrics()
        bus = self.config.bus
        journal = self.journal()
        self.pub = Publisher(
            self.zctx,
            bus.xsub,
            self.worker_id,
            epoch=self.started_ns,
            sndhwm=bus.sndhwm,
            journal=journal,
            curve=self.curve,
        )
        if isinstance(journal, JournalWriter):
            self.spawn(self._journal_upkeep(journal), name="journal")
        main_task: asyncio.Task[None] | None = None
        try:
            if self.settings.control:
                self.spawn(self._control(), name="control")
            await self._unless_failed(self.setup())
            self._set_up = True
            # Everything built so far (imports, config, the setup's tables) lives as long as the
            # process: parked outside the collector, a full collection no longer walks it, so
            # its pause in the middle of the hot path is bounded by what the work itself allocates.
            gc.freeze()
            self.spawn(self._heartbeat(), name="heartbeat")
            # A PUB drops what it sends before its connection is up; give the writer's
            # subscription a moment to arrive so "started" is not lost (bounded: no writer, no wait).
            await self._unless_failed(self.pub.wait_for_subscriber(f"wevent.{self.worker_id}", timeout=1.0))
            self.event("started")
            self.log.info("started", extra={"ctx": {"pid": os.getpid()}})
            main_task = asyncio.create_task(self.main(), name=f"{self.worker_id}:main")
            stop_task = asyncio.create_task(self.stopping.wait())
            failed_task = asyncio.create_task(self.tasks.failed.wait())
            await asyncio.wait({main_task, stop_task, failed_task}, return_when=asyncio.FIRST_COMPLETED)
            stop_task.cancel()
            failed_task.cancel()
            crash = main_task.exception() if main_task.done() and not main_task.cancelled() else None
            self.stopping.set()
            if crash is not None:
                self._failed_with("worker crashed", crash)
            # No drain after a failure (in main or a spawned task): the worker's state is suspect
            # (a writer would commit stream positions past rows a failed batch never built).
            # What it had not finished is in the journals, replayed by the restarted worker.
            if self.tasks.failure is None:
                try:
                    await asyncio.wait_for(self.drain(), self.settings.drain_deadline_s)
                except TimeoutError:
                    self.log.warning(
                        "drain deadline passed", extra={"ctx": {"deadline_s": self.settings.drain_deadline_s}}
                    )
        except _BackgroundFailed:
            pass  # logged when the task failed
        except Exception as exc:
            self._failed_with("worker failed", exc)
        finally:
            if main_task is not None and not main_task.done():
                await finish(main_task, "main", self._failed_with)
            await self.tasks.close()
            try:
                await self.teardown()
            except Exception as exc:
                if self._set_up:
                    self._failed_with("teardown failed", exc)
                else:
                    # Best effort after a failed setup (which was logged and decides the exit):
                    # what setup never opened cannot be closed, and needs no traceback.
                    self.log.warning(
                        "teardown after a failed setup did not finish", extra={"ctx": {"error": repr(exc)}}
                    )
            code = self.exit_status(_exit_code(self.tasks.failure))
            self.event("stopped", exit_code=code)
            self.pub.close()
            # The journal outlives teardown (the "stopped" event above is journaled too).
            close_journal = getattr(self.pub.journal, "close", None)
            if close_journal is not None:
                try:
                    close_journal()
                except OSError as exc:
                    self.log.error("journal close failed", extra={"ctx": {"error": repr(exc)}})
                    code = code or 1
            if self._metrics_server is not None:
                self._metrics_server.shutdown()
            self.curve.close()
            # Sockets a worker forgot to close must not hang the exit.
            self.zctx.destroy(linger=0)
            self.log.info("stopped", extra={"ctx": {"exit_code": code}})
        return code

    def run(self) -> int:
        """Process entry point."""
        return uvloop.run(self.serve())
