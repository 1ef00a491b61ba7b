"""The writer's Prometheus metrics, and how offer and batch outcomes are counted and logged."""

from __future__ import annotations

import logging
from pathlib import Path

from prometheus_client import Counter, Gauge, Histogram

from services.writer.batches import WriteResult
from services.writer.core import Batch, OfferResult
from services.writer.disk import disk_use
from shared.log import BurstLog
from shared.store.schema import APPEND

ROWS = Counter("kxfeed_writer_rows_total", "Rows stored, by table", ["table"])
DUPLICATE_ROWS = Counter(
    "kxfeed_writer_duplicate_rows_total",
    "Rows not stored because their natural key was already stored",
    ["table"],
)
REJECTED_ROWS = Counter(
    "kxfeed_writer_rejected_rows_total", "Rows the database refused (bad values), skipped", ["table"]
)
MESSAGES = Counter(
    "kxfeed_writer_messages_total",
    "Bus/journal messages by outcome: accepted, duplicate (seq already taken), deferred (left to "
    "the journal replay), shed (dropped from the buffer during an outage), ignored (kind not stored), "
    "unstored (a durable kind with no table yet; none today)",
    ["outcome"],
)
UNCHANGED_POLLS = Counter(
    "kxfeed_writer_unchanged_polls_total",
    "Poll snapshots identical to the previous one for the market, not stored",
)
LOST = Counter(
    "kxfeed_writer_lost_messages_total",
    "Sequence numbers missing from a stream that no journal could supply",
    ["kind"],
)
BATCH_SECONDS = Histogram(
    "kxfeed_writer_batch_seconds",
    "Time to write one batch (one transaction)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BATCH_ROWS = Histogram(
    "kxfeed_writer_batch_rows",
    "Rows per written batch",
    buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10000, 20000),
)
STORE_LATENCY = Histogram(
    "kxfeed_writer_store_latency_seconds",
    "Receive (ts_recv) to committed, for the oldest message of each batch",
    # Fine from 0.2 s to 1 s: batches close at batch_ms (200 ms), so that is where they land.
    buckets=(0.01, 0.05, 0.1, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.75, 1, 2.5, 5, 10, 30, 60, 300),
)
LAG_SECONDS = Gauge(
    "kxfeed_writer_lag_seconds", "How long the oldest message seen but not yet stored has waited"
)
LAG_MESSAGES = Gauge("kxfeed_writer_lag_messages", "Messages seen on the bus or journal but not yet stored")
BUFFERED = Gauge("kxfeed_writer_buffered_messages", "Messages waiting in the writer's buffer")
RETRIES = Counter("kxfeed_writer_retries_total", "Batch writes retried, by error kind", ["error"])
OUTAGE_SECONDS = Counter("kxfeed_writer_outage_seconds_total", "Time the database was failing writes")
DB_UP = Gauge("kxfeed_writer_db_up", "1 while the last write succeeded")
REPLAYS = Counter("kxfeed_writer_replays_total", "Journal replays, by reason", ["reason"])
REPLAYED = Counter(
    "kxfeed_writer_replayed_messages_total", "Messages accepted from the journal during replays"
)
BAD_RECORDS = Counter(
    "kxfeed_writer_bad_journal_records_total", "Journal records that did not decode (skipped)"
)
CURSOR_ERRORS = Counter("kxfeed_writer_cursor_errors_total", "Failed journal cursor updates")
DATA_DIR_BYTES = Gauge(
    "kxfeed_data_dir_bytes", "Bytes allocated to files under the data / journal directory", ["dir"]
)
DATA_DIR_FREE = Gauge(
    "kxfeed_data_dir_free_bytes", "Bytes still free on the file system of the data / journal dir", ["dir"]
)
DATA_DIR_SIZE = Gauge(
    "kxfeed_data_dir_size_bytes", "Size of the file system of the data / journal directory", ["dir"]
)


def count_offer(
    res: OfferResult, counters: dict[str, int], burst: BurstLog, log: logging.Logger, bound: int
) -> None:
    if res.accepted:
        MESSAGES.labels("accepted").inc(res.accepted)
        counters["accepted"] += res.accepted
    if res.duplicates:
        MESSAGES.labels("duplicate").inc(res.duplicates)
    if res.deferred:
        MESSAGES.labels("deferred").inc(res.deferred)
    if res.ignored:
        MESSAGES.labels("ignored").inc(res.ignored)
        burst.event("ignored", "messages of a kind the writer does not store", amount=res.ignored)
    if res.unstored:
        MESSAGES.labels("unstored").inc(res.unstored)
        if not counters.get("unstored"):
            log.info(
                "fill/position messages are not stored (no table yet): skipped and counted",
                extra={"ctx": {"amount": res.unstored}},
            )
        counters["unstored"] = counters.get("unstored", 0) + res.unstored
    if res.shed:
        MESSAGES.labels("shed").inc(res.shed)
        counters["shed"] += res.shed
        log.warning(
            "buffer past its bound while the database fails: dropped what the journals hold",
            extra={"ctx": {"dropped": res.shed, "bound": bound}},
        )
    for (pub, epoch, kind), n in res.lost:
        LOST.labels(kind).inc(n)
        counters["lost"] += n
        burst.event(
            f"lost/{pub}/{kind}",
            "messages lost: no journal holds them",
            amount=n,
            publisher=pub,
            epoch=epoch,
            kind=kind,
        )


def count_batch(
    batch: Batch, res: WriteResult, seconds: float, now_ns: int, counters: dict[str, int], burst: BurstLog
) -> None:
    BATCH_SECONDS.observe(seconds)
    BATCH_ROWS.observe(batch.row_count())
    STORE_LATENCY.observe(max(0.0, (now_ns - batch.oldest_recv_ns) / 1e9))
    if batch.unchanged_polls:
        UNCHANGED_POLLS.inc(batch.unchanged_polls)
    for table, candidates in res.candidates.items():
        inserted = res.inserted.get(table, 0)
        ROWS.labels(table).inc(inserted)
        counters["rows"] += inserted
        rejected = sum(1 for r in res.rejected if r.table == table)
        duplicates = candidates - inserted - rejected
        if duplicates:
            DUPLICATE_ROWS.labels(table).inc(duplicates)
            counters["duplicate_rows"] = counters.get("duplicate_rows", 0) + duplicates
            # Distinct messages with one natural key: new data may be going missing (a restarted
            # source reusing ids did), so it is said, not only counted.
            burst.event(
                f"duplicate/{table}",
                "rows not stored: their natural key is already stored",
                amount=duplicates,
                table=table,
                rows_in_batch=candidates,
                batch_first_key=_key(batch, table),
                streams=", ".join(sorted({f"{pub}/{kind}" for pub, _, kind in batch.offsets})[:8]),
            )
    for r in res.rejected:
        REJECTED_ROWS.labels(r.table).inc()
        burst.event(f"rejected/{r.table}", "row refused by the database, skipped", row=r.key, error=r.error)
    counters["batches"] += 1


def _key(batch: Batch, table: str) -> str:
    """The primary key of the batch's first row of ``table``, for a log line."""
    rows = batch.rows.get(table)
    if not rows:
        return ""
    cols = APPEND[table].columns
    return ", ".join(f"{c}={rows[0][cols.index(c)]!r}"[:60] for c in APPEND[table].key)


def measure_disk(dirs: dict[str, Path], log: logging.Logger) -> None:
    """Set the disk gauges of each directory (blocking: run in a thread)."""
    for label, path in dirs.items():
        try:
            use = disk_use(path)
        except OSError as exc:  # the gauges keep their last value; the next round tries again
            log.warning("disk use not measured", extra={"ctx": {"dir": str(path), "error": str(exc)}})
            continue
        if use is None:
            continue
        DATA_DIR_BYTES.labels(label).set(use.used)
        DATA_DIR_FREE.labels(label).set(use.free)
        DATA_DIR_SIZE.labels(label).set(use.size)
