"""Journals on a real disk, under ``kxfeed up`` with the simulator, connector, orderbook and
writer: the connector prunes its own journal (only what is old and committed), and a full
disk (a small tmpfs as the data dir) is counted, survived and recovered from with no row
lost that the journal had."""

from __future__ import annotations

import contextlib
import errno
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared import journal, ports
from shared.config import Config
from shared.messages import BATCH_DECODER, Message
from shared.store.schema import APPEND
from tests.integration.test_supervisor_pipeline import committed_streams
from tests.integration.test_supervisor_processes import Up, up_factory
from tests.support.config import make_config, write_config
from tests.support.procs import wait_until
from tests.support.synth import expected_tables

__all__ = ["up_factory"]  # the fixture, re-used from the process tests

WORKERS = ["bus", "sim", "writer", "orderbook", "connector"]


def metric(cfg: Config, worker: str, name: str) -> float | None:
    port = ports.reported(cfg.data_dir, worker, "metrics")
    if port is None:
        return None
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            body = resp.read().decode()
    except OSError:
        return None
    total = None
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == name:
                total = (total or 0.0) + sample.value
    return total


def pipeline(tmp: Path, data: Path, **journal_cfg: Any) -> tuple[Config, Path]:
    cfg = make_config(
        data,
        supervisor={"workers": WORKERS, "shutdown_timeout_s": 20.0, "ready_timeout_s": 60.0},
        sim={"rate": 200.0, "markets": 20},
        writer={"cursor_interval_s": 0.5, "retry_max_s": 1.0, "disk_interval_s": 0.5},
        journal={"dir": str(data / "journal"), **journal_cfg},
    )
    return cfg, write_config(cfg, tmp / "kx.toml")  # the config itself stays off the small disk


def journaled(directory: Path) -> list[Message]:
    return [m for rec in journal.read(directory) for m in BATCH_DECODER.decode(rec.payload)]


def stored_rows(db: Path, tables: list[str]) -> dict[str, set[tuple[Any, ...]]]:
    import asyncio

    from shared.config import DbConfig
    from shared.store.engine import make_engine
    from tests.support.synth import read_tables

    async def go() -> dict[str, set[tuple[Any, ...]]]:
        engine = make_engine(DbConfig(url=f"sqlite+aiosqlite:///{db}"))
        try:
            return await read_tables(engine, tables)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def restarts(up: Up) -> dict[str, int]:
    return {name: w.get("restarts", 0) for name, w in up.workers().items()}


@pytest.mark.slow
def test_the_connector_prunes_its_journal_only_past_the_writer_cursor(
    tmp_path: Path, up_factory: Any
) -> None:
    data = tmp_path / "data"
    cfg, path = pipeline(
        tmp_path, data, segment_bytes=32 * 1024, segment_age_s=0.5, retention_s=0.0, prune_interval_s=0.2
    )
    up: Up = up_factory(cfg, path)
    up.wait_running(*WORKERS, timeout=90)
    jdir = data / "journal" / "connector"

    closed: dict[int, int] = {}  # the final size of each closed segment seen

    def pruned_some() -> bool:
        segs = journal.list_segments(jdir)
        for i in segs[:-1]:
            with contextlib.suppress(FileNotFoundError):
                closed[i] = journal.segment_path(jdir, i).stat().st_size
        cursor = journal.read_cursor(jdir, "writer")
        return bool(segs) and segs[0] >= 3 and cursor is not None

    assert wait_until(pruned_some, 90, 0.2), (journal.list_segments(jdir), up.log()[-3000:])
    # Whatever went was committed: the oldest segment left is at or before the writer's cursor,
    # or the one after it when the cursor reached the end of its closed segment (a consumer
    # there needs only the next one: shared.journal JournalWriter._needed_from).
    for _ in range(20):
        segs = journal.list_segments(jdir)
        cursor = journal.read_cursor(jdir, "writer")
        assert cursor is not None and segs, (segs, cursor)
        at_end = cursor.offset >= closed.get(cursor.segment, 0)
        assert segs[0] <= cursor.segment or (segs[0] == cursor.segment + 1 and at_end), (segs, cursor, closed)
    assert (metric(cfg, "connector", "kxfeed_journal_segments_pruned_total") or 0) >= 3
    assert up.stop(90) == 0, up.log()[-3000:]
    committed = committed_streams(data / "kxfeed.db")
    for m in journaled(jdir):
        if m.kind in ("delta", "snapshot", "trade", "ticker"):
            assert committed.get((m.pub, m.epoch, m.kind), 0) >= m.seq


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "data"
    mnt.mkdir()
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)], capture_output=True, text=True
    )
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN): {res.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(disk: Path) -> Path:
    """Take every free byte of ``disk`` with one file; returns it."""
    filler = disk / "filler"
    chunk = b"\xff" * (256 * 1024)
    with open(filler, "wb") as fh:
        try:
            while True:
                fh.write(chunk)
                fh.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    # What is left below a chunk, byte by byte in small writes.
    with open(filler, "ab", buffering=0) as fh, contextlib.suppress(OSError):
        while True:
            fh.write(b"\xff" * 512)
    return filler


@pytest.mark.slow
def test_a_full_disk_is_survived_and_nothing_journaled_is_lost(
    tmp_path: Path, small_disk: Path, up_factory: Any
) -> None:
    cfg, path = pipeline(tmp_path, small_disk, segment_bytes=256 * 1024)
    up: Up = up_factory(cfg, path)
    up.wait_running(*WORKERS, timeout=90)
    jdir = small_disk / "journal" / "connector"
    db = small_disk / "kxfeed.db"
    assert wait_until(lambda: any(k[2] == "delta" for k in committed_streams(db)), 60, 0.2), up.log()[-3000:]
    before = restarts(up)
    free_gauge = metric(cfg, "writer", "kxfeed_data_dir_free_bytes")
    assert free_gauge is not None and free_gauge > 0

    filler = fill(small_disk)
    assert wait_until(lambda: (metric(cfg, "connector", "kxfeed_journal_write_failures_total") or 0) > 0, 60)
    assert wait_until(lambda: metric(cfg, "writer", "kxfeed_writer_db_up") == 0, 60), up.log()[-3000:]
    applied = up.workers()["orderbook"]["counters"].get("deltas_applied", 0)
    # The books go on while nothing can be written: the frames are still published.
    assert wait_until(
        lambda: up.workers()["orderbook"]["counters"].get("deltas_applied", 0) > applied + 50, 60
    ), up.workers()["orderbook"]
    # The gauge is measured every disk_interval_s (plus a 1 s gauge round): wait for a round
    # that saw the full disk, not the one before it.
    assert wait_until(lambda: (metric(cfg, "writer", "kxfeed_data_dir_free_bytes") or 0) < 1024 * 1024, 30), (
        metric(cfg, "writer", "kxfeed_data_dir_free_bytes")
    )

    filler.unlink()  # space returns
    assert wait_until(lambda: metric(cfg, "writer", "kxfeed_writer_db_up") == 1, 90), up.log()[-3000:]
    assert wait_until(lambda: metric(cfg, "connector", "kxfeed_journal_write_failing") == 0, 60)
    assert restarts(up) == before, "connector and writer kept running"
    assert up.stop(90) == 0, up.log()[-3000:]

    log = up.log()
    assert log.count("journal: append failed") >= 1
    msgs = journaled(jdir)
    want = expected_tables(msgs)
    tables = [t for t in want if t in APPEND and t != "worker_events"]
    got = stored_rows(db, tables)
    for table in tables:
        missing = want[table] - got[table]
        assert not missing, f"{table}: {len(missing)} journaled rows not stored"
    committed = committed_streams(db)
    lost = [
        m for m in msgs if m.kind in ("delta", "trade") and committed.get((m.pub, m.epoch, m.kind), 0) < m.seq
    ]
    assert not lost
