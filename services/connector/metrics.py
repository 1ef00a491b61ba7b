"""The connector's Prometheus metrics (``kxfeed_ws_*``, ``kxfeed_connector_*``).

The pure cores (session, resync, frame faults, subscription table, recovery) keep plain
:class:`~services.connector.counts.Counts` and lists of observations; the worker (the
shell) exports them here with :class:`CountSync` and :func:`observe_ages` after each batch.

Per-frame observations (message age) go through :class:`FastHistogram`: the
prometheus_client Histogram takes a lock and walks its buckets per observation,
which at 100k frames/s is a visible share of the budget. FastHistogram keeps plain
integer bucket counts and exposes them as a normal Prometheus histogram.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

from shared.kalshi.ws import TYPE_NAMES

from .counts import NAMES, Counts

if TYPE_CHECKING:
    from .session import Session
    from .validity import Recovery

CONNECTED = Gauge(
    "kxfeed_ws_connected", "1 while the Kalshi WebSocket is connected and subscribed", ["worker"]
)
UPTIME = Gauge(
    "kxfeed_ws_connection_uptime_seconds", "Seconds the current WebSocket connection has been up", ["worker"]
)
RECONNECTS = Counter(
    "kxfeed_ws_reconnects_total", "WebSocket reconnects, by the reason the last one ended", ["reason"]
)
AUTH_FAILURES = Counter("kxfeed_ws_auth_failures_total", "WebSocket handshakes refused with 401/403")
MESSAGES = Counter("kxfeed_ws_messages_total", "Frames received from Kalshi, by message type", ["channel"])
BAD_FRAMES = Counter("kxfeed_ws_bad_frames_total", "Frames that could not be used, by reason", ["reason"])
UNKNOWN_TYPES = Counter("kxfeed_ws_unknown_types_total", "Frames of a message type we do not know", ["type"])
DUPLICATES = Counter(
    "kxfeed_ws_duplicates_total", "Order-book frames with seq <= the last seen on their sid (dropped)"
)
REANCHORED = Counter(
    "kxfeed_ws_seq_reanchored_total",
    "Sequences resumed below a seq that had jumped ahead (the jump was a gap, not the new sequence)",
)
GAPS = Counter("kxfeed_ws_gaps_total", "Sequence gaps and other book breaks, by reason", ["reason"])
DISCARDED = Counter("kxfeed_ws_discarded_total", "Frames deliberately not published, by reason", ["reason"])
RESUBSCRIBES = Counter("kxfeed_ws_resubscribes_total", "Subscriptions made again, by reason", ["reason"])
SNAPSHOT_REQUESTS = Counter(
    "kxfeed_ws_snapshot_requests_total",
    "Markets asked for with update_subscription get_snapshot, by why",
    ["source"],
)
PRIVATE_SKIPPED = Counter(
    "kxfeed_connector_private_channels_skipped_total",
    "Private channels enabled in config but not subscribed: no real Kalshi credentials",
    ["channel"],
)
COMMANDS = Counter("kxfeed_ws_commands_total", "Commands sent to Kalshi", ["cmd"])
COMMAND_ERRORS = Counter("kxfeed_ws_command_errors_total", "Error replies from Kalshi, by code", ["code"])
SPLITS = Counter(
    "kxfeed_ws_splits_total",
    "Subscriptions Kalshi refused for their market count (error 26): split in two, or (one market) given up",
    ["outcome"],
)
COMMAND_WAITS = Counter(
    "kxfeed_ws_command_waits_total", "Commands held back to stay under Kalshi's WebSocket command rate"
)
SUBSCRIBED_MARKETS = Gauge(
    "kxfeed_ws_subscribed_markets", "Markets in the connector's market set", ["worker"]
)
SUBSCRIPTIONS = Gauge(
    "kxfeed_ws_subscriptions", "Live subscriptions (sids) on the current connection", ["worker"]
)
GAP_RECOVERY = Histogram(
    "kxfeed_ws_gap_recovery_seconds",
    "From gap detection to fresh snapshots for every market it touched",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
DECODE = Histogram(
    "kxfeed_ws_decode_seconds",
    "Decode + check + convert time per frame (mean over each drained batch)",
    buckets=(1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 1e-3),
)
LIFECYCLE_CHANGES = Counter(
    "kxfeed_connector_market_changes_total",
    "Markets added to / removed from the set after discovery",
    ["change"],
)
DISCOVERY_FAILURES = Counter(
    "kxfeed_connector_discovery_failures_total", "Market discoveries that failed (retried)"
)
CONTROL_REQUESTS = Counter("kxfeed_connector_control_total", "Bus/socket control requests handled", ["cmd"])

_AGE_BOUNDS_MS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)


class FastHistogram(Collector):
    """A histogram over integer milliseconds, exposed in seconds; ``observe_ms`` is a bisect
    and an increment."""

    def __init__(self, name: str, doc: str, bounds_ms: Sequence[int] = _AGE_BOUNDS_MS) -> None:
        self.name = name
        self.doc = doc
        self.bounds = list(bounds_ms)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum_ms = 0

    def observe_ms(self, value: int) -> None:
        if value < 0:
            value = 0  # clock skew: the exchange's clock is ahead of ours
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum_ms += value

    def observe_many_ms(self, values: list[int]) -> None:
        """:meth:`observe_ms` of each value, by sorting them (in place) and bisecting the sorted
        list once per bucket bound: a batch of thousands of ages costs ~20 bisects, not one each."""
        if not values:
            return
        values.sort()
        bisect_right = bisect.bisect_right
        counts = self.counts
        below = 0  # a negative age (clock skew) is observed as 0, in the first bucket, as one at a time
        for i, bound in enumerate(self.bounds):
            upto = bisect_right(values, bound)
            counts[i] += upto - below
            below = upto
        counts[-1] += len(values) - below
        total = sum(values)
        if values[0] < 0:
            total -= sum(values[: bisect.bisect_left(values, 0)])
        self.sum_ms += total

    def collect(self) -> Iterator[HistogramMetricFamily]:
        buckets: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip(self.bounds, self.counts, strict=False):
            running += n
            buckets.append((repr(bound / 1000), running))
        running += self.counts[-1]
        buckets.append(("+Inf", running))
        yield HistogramMetricFamily(self.name, self.doc, buckets=buckets, sum_value=self.sum_ms / 1000)


MESSAGE_AGE = FastHistogram(
    "kxfeed_ws_message_age_seconds", "Receive time minus the exchange's ts_ms (clock skew included)"
)
SEND_AGE = FastHistogram(
    "kxfeed_ws_send_age_seconds",
    "Receive time minus sending_ts_ms, when Kalshi sends it (network + buffering)",
)
REGISTRY.register(MESSAGE_AGE)
REGISTRY.register(SEND_AGE)


#: Each core counter (a :data:`~services.connector.counts.NAMES` entry) and its Prometheus counter.
COUNTERS: dict[str, Counter] = {
    "messages": MESSAGES,
    "bad_frames": BAD_FRAMES,
    "unknown_types": UNKNOWN_TYPES,
    "duplicates": DUPLICATES,
    "reanchored": REANCHORED,
    "gaps": GAPS,
    "discarded": DISCARDED,
    "resubscribes": RESUBSCRIBES,
    "snapshot_requests": SNAPSHOT_REQUESTS,
    "commands": COMMANDS,
    "command_errors": COMMAND_ERRORS,
    "splits": SPLITS,
    "command_waits": COMMAND_WAITS,
}
assert set(COUNTERS) == NAMES
_UNLABELLED = frozenset({"duplicates", "reanchored", "command_waits"})
# Series exported at 0 from the start (as when the cores resolved these label children at
# import): a rate() over them works before the first bad frame.
for _name in TYPE_NAMES.values():
    MESSAGES.labels(_name)
for _reason in ("json", "schema", "range", "units"):
    BAD_FRAMES.labels(_reason)
DISCARDED.labels("awaiting_snapshot")


class CountSync:
    """Adds to the Prometheus counters what one core's :class:`Counts` gained since the last
    :meth:`sync`. A new ``Counts`` object (a new connection's session) starts from zero."""

    def __init__(self) -> None:
        self._source: Counts | None = None
        self._synced: dict[tuple[str, str], int] = {}

    def sync(self, counts: Counts) -> None:
        if counts is not self._source:
            self._source, self._synced = counts, {}
        synced = self._synced
        for key, value in counts.items():
            n = value - synced.get(key, 0)
            if not n:
                continue
            synced[key] = value
            name, label = key
            metric = COUNTERS[name]
            (metric if name in _UNLABELLED else metric.labels(label)).inc(n)


def observe_ages(hist: FastHistogram, ages_ms: list[int]) -> None:
    """Observe a core's per-frame ages and empty its list."""
    hist.observe_many_ms(ages_ms)
    ages_ms.clear()


def observe_recoveries(seconds: list[float]) -> None:
    """Observe the gap recovery times a core kept and empty its list."""
    for v in seconds:
        GAP_RECOVERY.observe(v)
    seconds.clear()


class CoreExport:
    """Everything the connector's cores counted and observed, into Prometheus: called by the
    shell after each batch (the worker's ``_flush``; the replay bench does the same)."""

    def __init__(self) -> None:
        self.session_sync = CountSync()
        self.recovery_sync = CountSync()

    def __call__(self, s: Session | None, recovery: Recovery) -> None:
        if s is not None:
            self.session_sync.sync(s.counts)
            observe_ages(MESSAGE_AGE, s.ages_ms)
            observe_ages(SEND_AGE, s.send_ages_ms)
        self.recovery_sync.sync(recovery.counts)
        observe_recoveries(recovery.recovery_s)
