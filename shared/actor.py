"""The worker base: lifecycle, heartbeat, control socket, metrics, signals.

A worker subclasses :class:`Actor`, sets ``name``, and fills in the hooks:

- ``setup()``     open what the worker needs (subscribers, clients);
- ``main()``      the work; runs until ``self.stopping`` is set (or returns);
- ``drain()``     finish in-flight work; bounded by ``drain_deadline_s``;
- ``teardown()``  close resources;
- ``stats()``     key counters, sent in every heartbeat and by ``stats``;
- ``on_control(cmd, args)`` worker-specific control commands; raise ``UnknownCommand``
  for a command it does not know and ``ValueError`` for a bad request (both are
  answered as errors; anything else is also logged as a worker failure).

:meth:`Actor.run` is the process entry point: uvloop, SIGTERM/SIGINT -> drain ->
exit 0; a crash in ``main`` exits 1 (the supervisor restarts it).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import time
from typing import Any, ClassVar

import msgspec
import uvloop
import zmq
import zmq.asyncio
from prometheus_client import Gauge, start_http_server

from shared import ports
from shared.bus import Publisher, RecordSink, Subscriber
from shared.config import Config, WorkerBase
from shared.control import ENCODER, REQUEST_DECODER, ControlReply
from shared.journal import open_journal
from shared.log import get_logger
from shared.messages import Heartbeat, WorkerEvent

UPTIME = Gauge("kxfeed_uptime_seconds", "Seconds since this worker process started", ["worker"])
READY = Gauge("kxfeed_ready", "1 when this worker reports ready", ["worker"])


class UnknownCommand(Exception):
    pass


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
        self._tasks: list[asyncio.Task[None]] = []
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

    async def on_control(self, cmd: str, args: dict[str, Any]) -> Any:
        raise UnknownCommand(cmd)

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
            await asyncio.sleep(interval)

    async def _control(self) -> None:
        ctx = zmq.asyncio.Context.instance()
        sock = ctx.socket(zmq.REP)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(self.settings.control)
        try:
            while True:
                raw = await sock.recv()
                reply = await self._dispatch(raw)
                await sock.send(ENCODER.encode(reply))
        finally:
            sock.close(0)

    async def _dispatch(self, raw: bytes) -> ControlReply:
        try:
            req = REQUEST_DECODER.decode(raw)
        except msgspec.DecodeError as exc:
            return ControlReply(ok=False, error=f"bad request: {exc}")
        try:
            if req.cmd == "ping":
                return ControlReply(ok=True, result={"worker": self.worker_id, "pid": os.getpid()})
            if req.cmd == "stats":
                return ControlReply(
                    ok=True, result={"ready": self.ready, "uptime_ms": self.uptime_ms(), **self.stats()}
                )
            if req.cmd == "stop":
                self.request_stop()
                return ControlReply(ok=True, result="stopping")
            return ControlReply(ok=True, result=await self.on_control(req.cmd, req.args))
        except UnknownCommand:
            return ControlReply(ok=False, error=f"unknown command {req.cmd!r} for {self.worker_id}")
        except ValueError as exc:  # the caller's mistake (bad argument, unknown ticker), not ours
            return ControlReply(ok=False, error=str(exc))
        except Exception as exc:  # a bad query must not kill the worker
            self.log.warning("control command failed", extra={"ctx": {"cmd": req.cmd, "error": repr(exc)}})
            return ControlReply(ok=False, error=f"{type(exc).__name__}: {exc}")

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

    async def serve(self) -> int:
        """Run the whole lifecycle; returns the process exit code."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        self._start_metrics()
        bus = self.config.bus
        self.pub = Publisher(
            self.zctx,
            bus.xsub,
            self.worker_id,
            epoch=self.started_ns,
            sndhwm=bus.sndhwm,
            journal=self.journal(),
        )
        code = 0
        main_task: asyncio.Task[None] | None = None
        try:
            if self.settings.control:
                self._tasks.append(asyncio.create_task(self._control()))
            await self.setup()
            # Everything built so far (imports, config, the setup's tables) lives as long as the
            # process: parked outside the collector, a full collection no longer walks it, so
            # its pause in the middle of the hot path is bounded by what the work itself allocates.
            gc.freeze()
            self._tasks.append(asyncio.create_task(self._heartbeat()))
            # A PUB drops what it sends before its connection is up; give the writer's
            # subscription a moment to arrive so "started" is not lost (bounded: no writer, no wait).
            await self.pub.wait_for_subscriber(f"wevent.{self.worker_id}", timeout=1.0)
            self.event("started")
            self.log.info("started", extra={"ctx": {"pid": os.getpid()}})
            main_task = asyncio.create_task(self.main())
            stop_task = asyncio.create_task(self.stopping.wait())
            done, _ = await asyncio.wait({main_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
            stop_task.cancel()
            if main_task in done and main_task.exception() is not None:
                exc = main_task.exception()
                self.log.error("worker crashed", exc_info=exc, extra={"ctx": {"error": repr(exc)}})
                code = 1
            self.stopping.set()
            try:
                await asyncio.wait_for(self.drain(), self.settings.drain_deadline_s)
            except TimeoutError:
                self.log.warning(
                    "drain deadline passed", extra={"ctx": {"deadline_s": self.settings.drain_deadline_s}}
                )
        except Exception as exc:
            self.log.error("worker failed", exc_info=exc, extra={"ctx": {"error": repr(exc)}})
            code = 1
        finally:
            for task in [*self._tasks, *([main_task] if main_task else [])]:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if main_task is not None and not main_task.done():
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await main_task
            with contextlib.suppress(Exception):
                await self.teardown()
            self.event("stopped", exit_code=code)
            self.pub.close()
            # The journal outlives teardown (the "stopped" event above is journaled too).
            close_journal = getattr(self.pub.journal, "close", None)
            if close_journal is not None:
                with contextlib.suppress(OSError):
                    close_journal()
            if self._metrics_server is not None:
                self._metrics_server.shutdown()
            # Sockets a worker forgot to close must not hang the exit.
            self.zctx.destroy(linger=0)
            self.log.info("stopped", extra={"ctx": {"exit_code": code}})
        return code

    def run(self) -> int:
        """Process entry point."""
        return uvloop.run(self.serve())
