"""The bridge's Prometheus metrics (the names ops/prometheus/alerts.yml reads)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

PUBLISHED = Counter(
    "kxfeed_jetstream_published_total", "Journal records published to JetStream (re-sends too)", ["stream"]
)
ACKED = Counter("kxfeed_jetstream_acked_total", "Records JetStream acknowledged as stored", ["stream"])
DUPLICATES = Counter(
    "kxfeed_jetstream_duplicates_total",
    "PubAcks saying the server already held the record (a re-send dropped by Nats-Msg-Id)",
    ["stream"],
)
MESSAGES = Counter(
    "kxfeed_jetstream_messages_total", "Bus messages in the records JetStream acknowledged", ["kind"]
)
REFUSED = Counter(
    "kxfeed_jetstream_refused_total",
    "Publishes the server refused (PubAck error, no stream for the subject); sent again later",
    ["reason"],
)
RESENT = Counter(
    "kxfeed_jetstream_resent_total",
    "Records queued again after a lost PubAck, a refusal or a reconnect",
    ["reason"],
)
TOO_LARGE = Counter(
    "kxfeed_jetstream_too_large_total",
    "Records larger than the NATS server's max_payload: not mirrored (logged with their msg id)",
    ["stream"],
)
LATE_ACKS = Counter(
    "kxfeed_jetstream_late_acks_total", "PubAcks for records no longer in flight (after a re-send)"
)
SKIPPED = Counter(
    "kxfeed_jetstream_skipped_records_total",
    "Journal records of kinds no stream mirrors (passed by the cursor, not published)",
)
BAD_RECORDS = Counter(
    "kxfeed_jetstream_bad_records_total", "Journal records that did not decode (passed, not published)"
)
TORN_SEGMENTS = Counter(
    "kxfeed_jetstream_torn_segments_total", "Closed journal segments whose tail did not parse (a crash)"
)
LOST_SEGMENTS = Counter(
    "kxfeed_jetstream_lost_segments_total", "Journal segments deleted before the bridge read them"
)
CONNECT_FAILURES = Counter(
    "kxfeed_jetstream_connect_failures_total", "Failed attempts to connect to NATS (each retried)"
)
DISCONNECTS = Counter("kxfeed_jetstream_disconnects_total", "Connections to NATS lost")
CURSOR_WRITES = Counter("kxfeed_jetstream_cursor_writes_total", "Consumer cursors written")
CONNECTED = Gauge("kxfeed_jetstream_connected", "1 while connected to NATS")
LAG_MESSAGES = Gauge(
    "kxfeed_jetstream_lag_messages",
    "Bus messages read from the journals and not yet acknowledged by JetStream",
)
LAG_BYTES = Gauge(
    "kxfeed_jetstream_lag_unread_bytes", "Journal bytes the bridge has not read yet (past its read position)"
)
LAG_SECONDS = Gauge(
    "kxfeed_jetstream_lag_seconds",
    "Age of the oldest journaled message not yet acknowledged by JetStream (0: caught up)",
)
INFLIGHT = Gauge("kxfeed_jetstream_inflight", "Records published and waiting for their PubAck")
