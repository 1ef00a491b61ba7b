"""Config sections common to every process: the section base, the worker base, and the
sections that are not one worker's (exchange, bus endpoints, logging, journal, database).
Each ``[<worker>]`` section is in ``config_workers``.

Split out of ``shared.config`` (which re-exports every name) to keep modules small; the loader
and the top-level ``Config`` live there.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

import msgspec

#: A ZeroMQ message size limit (``ZMQ_MAXMSGSIZE``): at least 64 KiB, at most 2 GiB.
MsgSize = Annotated[int, msgspec.Meta(ge=64 * 1024, le=2**31)]

__all__ = [
    "BusConfig",
    "ControlConfig",
    "CurveConfig",
    "DbConfig",
    "JournalConfig",
    "KalshiConfig",
    "LogConfig",
    "RetentionConfig",
    "WorkerBase",
    "retention_seconds",
]


class _Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class WorkerBase(_Section, frozen=True, kw_only=True):
    """Settings every worker has. Each worker section overrides the port defaults."""

    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    control: str = ""
    heartbeat_interval_s: float = 1.0
    drain_deadline_s: float = 5.0


class KalshiConfig(_Section, frozen=True, kw_only=True):
    #: sim: the local exchange simulator; demo / prod: Kalshi's environments.
    env: Literal["sim", "demo", "prod"] = "sim"
    #: Override the environment's URLs (empty = derived from ``env``).
    ws_url: str = ""
    rest_url: str = ""
    #: Path of the RSA private key PEM; ``KALSHI_PRIVATE_KEY_PATH`` wins when set.
    private_key_path: str = ""


class BusConfig(_Section, frozen=True, kw_only=True):
    #: Publishers connect to ``xsub``, subscribers to ``xpub`` (both bound by the bus proxy).
    xsub: str = "tcp://127.0.0.1:5555"
    xpub: str = "tcp://127.0.0.1:5556"
    #: High-water marks (messages). ZeroMQ's default of 1,000 loses bursts.
    sndhwm: int = 1_000_000
    rcvhwm: int = 1_000_000
    proxy_hwm: int = 1_000_000
    #: Most messages a subscriber hands over per wake-up.
    max_batch: int = 10_000
    #: Largest bus message (bytes) the proxy accepts (``ZMQ_MAXMSGSIZE`` on its XSUB, the one way
    #: in to every subscriber; its XPUB takes subscriptions only, up to 4 KiB): a peer sending
    #: more is disconnected by ZeroMQ before the message is allocated. The largest real message
    #: is an order-book snapshot: 259 KB for a full $0.0001 ladder on both sides (docs/bus.md).
    max_msg_bytes: MsgSize = 16 * 1024 * 1024


class ControlConfig(_Section, frozen=True, kw_only=True):
    """Every control socket (each worker's ``control`` endpoint and the supervisor's)."""

    #: Largest control request (bytes) accepted (``ZMQ_MAXMSGSIZE``): a request is a command
    #: and a few arguments, well under a kilobyte; replies are not limited.
    max_msg_bytes: MsgSize = 1024 * 1024


class CurveConfig(_Section, frozen=True, kw_only=True):
    """CURVE keys for bus and control endpoints that are not loopback (see ``shared.curve``):
    paths of ZeroMQ certificate files written by ``kxfeed keys``, never keys. Loopback and
    ``ipc://`` endpoints use none; a non-loopback one without the keys it needs is refused."""

    #: NAME.key_secret of this host's servers (the bus proxy, control sockets) bound beyond loopback.
    server_key: str = ""
    #: Directory of the NAME.key files of the clients those servers admit (nobody else).
    allowed_clients: str = ""
    #: NAME.key of the server this process connects to beyond loopback (the bus, a control socket).
    server_public_key: str = ""
    #: NAME.key_secret of this process as a client (its NAME.key is in the server's allowed_clients).
    client_key: str = ""


class LogConfig(_Section, frozen=True, kw_only=True):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json: bool = False


class JournalConfig(_Section, frozen=True, kw_only=True):
    #: One sub-directory per durable publisher. Empty = ``<data_dir>/journal``.
    dir: str = ""
    segment_bytes: Annotated[int, msgspec.Meta(ge=1, le=2**40)] = 64 * 1024 * 1024
    segment_age_s: Annotated[float, msgspec.Meta(gt=0)] = 3600.0
    #: never | segment (fsync on rotation/close) | batch (fsync every append batch)
    fsync: Literal["never", "segment", "batch"] = "segment"
    #: A segment is deleted when it is older than this AND every consumer (the writer) has
    #: committed past it; the process that writes the journal prunes it.
    retention_s: Annotated[float, msgspec.Meta(ge=0)] = 7 * 24 * 3600.0
    #: How often a journal's owner looks for segments to prune (also at its start).
    prune_interval_s: Annotated[float, msgspec.Meta(gt=0, le=86400)] = 60.0


#: Units of a retention: hours, days, weeks. No minutes or seconds: "30m" could be read as
#: 30 months, and a retention that short is a typo that would delete nearly everything.
_RETENTION = re.compile(r"^([1-9][0-9]{0,5})(h|d|w)$")
_RETENTION_UNIT_S = {"h": 3600, "d": 86400, "w": 7 * 86400}
#: Longest finite retention: 100 years (anything longer is "forever").
MAX_RETENTION_S = 36_500 * 86400


def retention_seconds(text: str) -> int | None:
    """``12h`` / ``30d`` / ``2w`` -> seconds; ``forever`` -> None; ValueError with advice else."""
    if text == "forever":
        return None
    m = _RETENTION.match(text)
    seconds = int(m.group(1)) * _RETENTION_UNIT_S[m.group(2)] if m else 0
    if not m or seconds > MAX_RETENTION_S:
        raise ValueError(
            f"{text!r} is not a retention: a whole number of hours, days or weeks from 1h to "
            '36500d (e.g. "12h", "30d", "2w"), or "forever"'
        )
    return seconds


class RetentionConfig(_Section, frozen=True, kw_only=True):
    """How long stored rows are kept, per kind (``[db] retention = { deltas = "30d" }``), by
    their ``ts``; "forever" (the default of every kind) keeps them. The writer deletes older
    rows (PostgreSQL: drops whole day partitions once their last day is past the retention)."""

    deltas: str = "forever"
    snapshots: str = "forever"
    tickers: str = "forever"
    trades: str = "forever"
    lifecycle: str = "forever"
    #: The gap records: kept by their own retention only, never because data they describe went.
    gaps: str = "forever"
    signals: str = "forever"
    worker_events: str = "forever"
    fills: str = "forever"
    positions: str = "forever"
    orders: str = "forever"
    order_groups: str = "forever"

    def __post_init__(self) -> None:
        for f in msgspec.structs.fields(self):
            value = getattr(self, f.name)
            try:
                retention_seconds(value)
            except ValueError as exc:
                raise ValueError(f"{f.name} = {exc}") from None

    def seconds(self) -> dict[str, int]:
        """Kind -> retention in seconds, for every kind that is not kept forever."""
        out: dict[str, int] = {}
        for f in msgspec.structs.fields(self):
            seconds = retention_seconds(getattr(self, f.name))
            if seconds is not None:
                out[f.name] = seconds
        return out


class DbConfig(_Section, frozen=True, kw_only=True):
    #: SQLAlchemy async URL: sqlite+aiosqlite:///path or postgresql+asyncpg://user@host/db.
    #: Empty = the SQLite file ``<data_dir>/kxfeed.db`` (so per environment, like data_dir).
    url: str = ""
    #: PostgreSQL only: schema (search_path) holding kxfeed's tables; created when missing.
    #: Empty = the server's default (public).
    schema: str = ""
    #: PostgreSQL only: seconds to wait for a connection before counting the attempt failed.
    connect_timeout_s: float = 5.0
    #: SQLite only: how long a statement waits for a lock held by another connection.
    sqlite_busy_timeout_ms: int = 5000
    #: SQLite only: NORMAL (WAL: a killed process loses nothing committed; a power cut may
    #: lose the last transactions, which the journals replay) or FULL.
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    #: How long stored rows are kept, per kind; see :class:`RetentionConfig`.
    retention: RetentionConfig = RetentionConfig()
    #: How often the writer prunes what is past its retention (also once at its start).
    prune_interval_s: Annotated[float, msgspec.Meta(ge=1, le=7 * 86400)] = 3600.0
    #: Most rows one pruning DELETE removes (one short transaction each, so the writer's
    #: batches never wait long behind it).
    prune_batch_rows: Annotated[int, msgspec.Meta(ge=100, le=1_000_000)] = 10_000
