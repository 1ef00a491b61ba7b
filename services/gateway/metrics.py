"""The gateway's Prometheus metrics (REST side; the stream's are the stream module's own)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "kxfeed_gateway_requests_total",
    "HTTP requests answered, by route template and status",
    ["route", "status"],
)
REJECTED = Counter(
    "kxfeed_gateway_rejected_total", "Requests refused before their route ran", ["reason"]
)  # reason: auth | rate | size
LATENCY = Histogram(
    "kxfeed_gateway_request_seconds",
    "Time from a request's arrival to its answer, by route template",
    ["route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
ERRORS = Counter(
    "kxfeed_gateway_errors_total", "Requests a dependency failed (or a bug): answered 5xx", ["route", "kind"]
)
BUS_MESSAGES = Counter("kxfeed_gateway_bus_messages_total", "Bus messages fed to the live state and streams")
RATE_CLIENTS = Gauge("kxfeed_gateway_rate_clients", "Clients whose rate-limit buckets are held")
