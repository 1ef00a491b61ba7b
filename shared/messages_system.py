"""The system's own messages: worker heartbeats and lifecycle, control requests over the bus.
Part of the bus schema (:mod:`shared.messages`, which re-exports them)."""

from __future__ import annotations

from typing import Any, ClassVar

from shared.message_header import Header, Int64


class Heartbeat(Header, frozen=True, tag="hb"):
    worker: str
    pid: Int64
    uptime_ms: Int64
    ready: bool
    counters: dict[str, Int64] = {}
    topic_field: ClassVar[str] = "worker"
    durable: ClassVar[bool] = False


class WorkerEvent(Header, frozen=True, tag="wevent"):
    """Lifecycle of a worker process (started, ready, stopped, exited, restarted, ...)."""

    worker: str
    event: str
    pid: Int64 = 0
    exit_code: Int64 | None = None
    detail: str = ""
    topic_field: ClassVar[str] = "worker"


class Control(Header, frozen=True, tag="ctl"):
    """A request to a worker over the bus, e.g. orderbook -> connector ``snapshot``."""

    target: str
    cmd: str
    tickers: list[str] = []
    reason: str = ""
    args: dict[str, Any] = {}
    topic_field: ClassVar[str] = "target"
    durable: ClassVar[bool] = False
