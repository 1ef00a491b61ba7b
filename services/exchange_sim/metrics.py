"""Prometheus metrics of the exchange simulator (``kxfeed_sim_*``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

FRAMES_SENT = Counter("kxfeed_sim_frames_sent_total", "WS frames the simulator wrote to clients")
STEPS = Counter("kxfeed_sim_steps_total", "Market activity steps (one book change each)")
CONNECTIONS = Gauge("kxfeed_sim_connections", "Open WS connections")
CONNECTS = Counter("kxfeed_sim_connects_total", "Accepted WS connections")
DISCONNECTS = Counter("kxfeed_sim_disconnects_total", "WS connections ended, by reason", ["reason"])
AUTH_REJECTED = Counter("kxfeed_sim_auth_rejected_total", "Requests refused with 401, by reason", ["reason"])
COMMAND_ERRORS = Counter("kxfeed_sim_command_errors_total", "WS command error replies, by code", ["code"])
OVERFLOWS = Counter(
    "kxfeed_sim_buffer_overflows_total", "Connections whose outbound buffer overflowed (error 25)"
)
FAULTS = Counter("kxfeed_sim_faults_injected_total", "Faults injected, by kind", ["kind"])
GAP_FRAMES = Counter("kxfeed_sim_gap_frames_total", "Seq-numbered frames withheld to make a gap")
REST_REQUESTS = Counter("kxfeed_sim_rest_requests_total", "REST/Odds API requests, by status", ["status"])
RATE_LIMITED = Counter("kxfeed_sim_rate_limited_total", "REST requests refused with 429 by the token bucket")
