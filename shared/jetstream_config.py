"""The ``[jetstream]`` section: the bridge of the durable kinds into NATS JetStream.

Kept beside (not inside) ``shared.config_workers`` because the stream classes are a small schema
of their own; ``shared.config`` re-exports :class:`JetStreamConfig` like every section.

The bridge is off unless ``enabled = true``: the default run needs no NATS server.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from shared.config_common import WorkerBase, _Section

__all__ = ["DEFAULT_STREAMS", "JetStreamConfig", "StreamClass"]

#: Seconds: a JetStream duration is sent in ns, and a year bounds every sane retention.
_YEAR_S = 366 * 86_400


class StreamClass(_Section, frozen=True, kw_only=True):
    """One retention class: one JetStream stream holding the subjects of ``kinds``."""

    #: JetStream stream name (letters, digits, ``_`` and ``-``).
    name: str
    #: Bus kinds mirrored into this stream (``snap``, ``delta``, ``trade``...).
    kinds: list[str]
    #: Servers holding a copy (1 on a single server, 3 on a cluster of three).
    replicas: Annotated[int, msgspec.Meta(ge=1, le=5)] = 1
    #: Messages older than this are removed by the server (0: kept until max_bytes).
    max_age_s: Annotated[float, msgspec.Meta(ge=0, le=_YEAR_S)] = 0.0
    #: Bytes the stream may hold, the oldest removed past it (-1: no limit).
    max_bytes: Annotated[int, msgspec.Meta(ge=-1, le=2**62)] = -1
    #: The server drops a message whose Nats-Msg-Id it saw this recently: it must cover the
    #: longest re-send, i.e. a NATS outage during which PubAcks were lost (see README).
    duplicate_window_s: Annotated[float, msgspec.Meta(gt=0, le=_YEAR_S)] = 900.0
    storage: Literal["file", "memory"] = "file"


DEFAULT_STREAMS: list[StreamClass] = [
    StreamClass(name="KXFEED_BOOK", kinds=["snap", "delta"], max_age_s=86_400.0),
    StreamClass(
        name="KXFEED_EVENTS",
        kinds=["trade", "ticker", "lifecycle", "evlifecycle", "fee", "gap", "signal"],
        max_age_s=30 * 86_400.0,
    ),
]


class JetStreamConfig(WorkerBase, frozen=True, kw_only=True):
    """The ``jetstream`` worker (``services/jetstream``)."""

    metrics_port: int = 9110
    control: str = "tcp://127.0.0.1:5610"
    #: Off by default: ``kxfeed up`` starts the bridge only when this is true.
    enabled: bool = False
    #: NATS servers (``nats://host:port``); a cluster lists several.
    servers: list[str] = msgspec.field(default_factory=lambda: ["nats://127.0.0.1:4222"])
    #: A NATS credentials file (JWT + nkey seed); empty: no authentication. Its content is
    #: never logged.
    creds_file: str = ""
    #: First token of every subject: ``<prefix>.<kind>.<series>.<ticker>``.
    subject_prefix: str = "kxfeed"
    streams: list[StreamClass] = msgspec.field(default_factory=lambda: list(DEFAULT_STREAMS))
    #: Records published and not yet acknowledged, at most (the PubAcks come back async).
    max_inflight: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 20_000
    #: Records read from the journals and held for publishing, at most (memory bound); past
    #: it the bridge only counts what is behind.
    max_pending: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)] = 100_000
    #: ... and at most this many payload bytes (snapshots are large).
    max_pending_bytes: Annotated[int, msgspec.Meta(ge=1 << 20, le=1 << 40)] = 256 * 1024 * 1024
    #: A PubAck not back after this long: everything unacknowledged is sent again (the
    #: server drops the duplicates by Nats-Msg-Id).
    ack_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=600)] = 5.0
    #: How often the journals are looked at when the last look found nothing new.
    poll_ms: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 5
    #: How often the consumer cursor (``consumers/jetstream``) is written (each write fsyncs).
    cursor_interval_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 0.5
    #: A server that answers no ping for ``ping_interval_s`` x ``max_outstanding_pings`` is taken
    #: as gone and reconnected (nats-py's default of 2 minutes hides a dead server too long).
    ping_interval_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 5.0
    max_outstanding_pings: Annotated[int, msgspec.Meta(ge=1, le=100)] = 3
    #: Backoff between NATS connection attempts, and after a refused publish.
    retry_initial_s: Annotated[float, msgspec.Meta(gt=0, le=600)] = 0.2
    retry_max_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 5.0
