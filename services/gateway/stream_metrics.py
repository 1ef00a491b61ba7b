"""The live stream's Prometheus metrics, read from the hubs' plain counts at scrape time
(nothing on the hot path)."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from services.gateway.live import LiveState
from services.gateway.stream import StreamCore


class ExportedHub(Protocol):
    """What the metrics read of a hub (:class:`services.gateway.stream_ws.StreamHub`)."""

    core: StreamCore
    live: LiveState


__all__ = ["COUNTERS", "HUBS", "LIVE_COUNTERS", "StreamCollector"]

#: Core counter -> (label name, help). Exported as ``kxfeed_gateway_stream_<name>_total``.
COUNTERS: dict[str, tuple[str, str]] = {
    "sent": ("type", "Frames sent to stream clients, by type"),
    "dropped": ("kind", "Frames dropped for clients that did not keep up ('disconnected': queues emptied)"),
    "lost_notices": ("", "'lost' notices sent to clients that had frames dropped"),
    "connects": ("", "Stream clients accepted"),
    "refused": ("reason", "Stream clients refused"),
    "disconnects": ("reason", "Stream clients gone, by reason"),
    "client_errors": ("error", "Client messages answered with an error, by error"),
    "coalesced": ("kind", "Frames replaced by a newer one within a subscription's interval"),
    "snapshots": ("", "Snapshot frames queued on subscribe"),
    "subscriptions": ("", "Subscriptions accepted"),
    "ignored": ("type", "Bus messages of a kind the stream does not serve"),
    "backlog_dropped": ("kind", "Bus messages dropped before their fan-out (the hub behind the bus)"),
}
LIVE_COUNTERS: dict[str, tuple[str, str]] = {
    "evicted": ("reason", "Markets whose live state was dropped (settled, or past live_max_markets)"),
    "ignored_closed": ("", "Bus messages about a settled market not kept in the live state"),
}


class StreamCollector(Collector):
    """The stream's metrics, read from the hubs' plain counts at scrape time (nothing on the hot path)."""

    def __init__(self, hubs: Callable[[], Iterable[ExportedHub]]) -> None:
        self._hubs = hubs

    def collect(self) -> Iterator[Metric]:
        hubs = list(self._hubs())
        yield from _counters("kxfeed_gateway_stream_", COUNTERS, [dict(h.core.counts) for h in hubs])
        yield from _counters("kxfeed_gateway_live_", LIVE_COUNTERS, [dict(h.live.counts) for h in hubs])
        gauges = {
            "kxfeed_gateway_stream_clients": ("Stream clients connected", lambda h: len(h.core.clients)),
            "kxfeed_gateway_stream_subscriptions": (
                "Stream subscriptions held",
                lambda h: h.core.subscriptions(),
            ),
            "kxfeed_gateway_stream_queued_frames": (
                "Frames queued for stream clients",
                lambda h: h.core.queued()[0],
            ),
            "kxfeed_gateway_stream_queued_bytes": (
                "Bytes queued for stream clients",
                lambda h: h.core.queued()[1],
            ),
            "kxfeed_gateway_live_markets": ("Markets with live state", lambda h: len(h.live)),
        }
        for name, (doc, read) in gauges.items():
            yield GaugeMetricFamily(name, doc, value=sum(read(h) for h in hubs))


def _counters(
    prefix: str, spec: dict[str, tuple[str, str]], counts: list[dict[tuple[str, str], int]]
) -> Iterator[Metric]:
    for name, (label, doc) in spec.items():
        family = CounterMetricFamily(prefix + name, doc, labels=[label] if label else [])
        values: dict[str, int] = {}
        for c in counts:
            for (key, value), n in c.items():
                if key == name:
                    values[value] = values.get(value, 0) + n
        if label:
            for value, n in sorted(values.items()):
                family.add_metric([value], n)
        else:
            family.add_metric([], values.get("", 0))
        yield family


#: Hubs exporting on the process's registry (a worker has one; tests may make several).
HUBS: weakref.WeakSet[ExportedHub] = weakref.WeakSet()
REGISTRY.register(StreamCollector(lambda: list(HUBS)))
