"""The gap filler's Prometheus metrics (``kxfeed_gapfill_*``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

GAPS = Counter(
    "kxfeed_gapfill_gaps_recovered_total",
    "Sequence gaps recovered, by how (get_snapshot, resubscribe, reconnect, rest, ...)",
    ["method"],
)
RECOVERY = Histogram(
    "kxfeed_gapfill_recovery_seconds",
    "From gap detection to every market of the gap back, by recovery method",
    ["method"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
OPEN_GAPS = Gauge("kxfeed_gapfill_open_gaps", "Gaps seen open and not yet recovered")
REST_REPAIRS = Counter("kxfeed_gapfill_rest_repairs_total", "Gaps whose books REST orderbooks repaired")
REST_BOOKS = Counter(
    "kxfeed_gapfill_rest_snapshots_total",
    "REST orderbooks published as resync snapshots, by why (gap, request)",
    ["reason"],
)
REST_FAILURES = Counter("kxfeed_gapfill_rest_failures_total", "REST orderbook fetches that failed (retried)")
GONE = Counter("kxfeed_gapfill_unknown_markets_total", "Markets REST no longer knows (nothing to repair)")
BAD_BOOKS = Counter("kxfeed_gapfill_bad_books_total", "REST orderbooks with unreadable levels (skipped)")
REQUESTS = Counter("kxfeed_gapfill_requests_total", "Snapshot requests received, by source", ["source"])
AUDITS = Counter("kxfeed_gapfill_audits_total", "Stored-sequence audits, by result", ["result"])
STORED_HOLES = Gauge(
    "kxfeed_gapfill_stored_holes",
    "Sequence holes in the database within the audit window; explained = after a recorded gap",
    ["explained"],
)
STORED_MISSING = Gauge(
    "kxfeed_gapfill_stored_missing_seqs", "Sequence numbers missing from the database within the audit window"
)
AUDITED = Gauge(
    "kxfeed_gapfill_audited_subscriptions", "Subscriptions (connection, sid) the last audit covered"
)
TRADES_BACKFILLED = Counter(
    "kxfeed_gapfill_trades_backfilled_total", "Trades the live channel missed, published from REST"
)
TRADE_WINDOWS = Counter(
    "kxfeed_gapfill_trade_windows_total",
    "Trade backfill windows fetched, by result (ok, capped: longer than trade_backfill_max_s)",
    ["result"],
)
TRADE_FAILURES = Counter(
    "kxfeed_gapfill_trade_failures_total", "Trade backfill windows whose REST fetch failed for good"
)
TRADE_RETRIES = Counter("kxfeed_gapfill_trade_retries_total", "Trade backfill REST fetches retried")
BAD_TRADES = Counter("kxfeed_gapfill_bad_trades_total", "REST trades with unreadable fields (skipped)")
CHECKPOINTS = Counter(
    "kxfeed_gapfill_trade_checkpoints_total",
    "Trade checkpoint events: resumed (a restart covered its downtime), torn (unreadable at start), "
    "failed (a save that did not reach the disk)",
    ["event"],
)
