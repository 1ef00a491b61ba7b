"""``kxfeed up`` with the real workers: whatever this install has, started in order against
the simulator, stopped in reverse on SIGTERM with the writer's last batch committed."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from services import registry
from shared.journal import read
from shared.messages import BATCH_DECODER
from tests.integration.test_supervisor_processes import Up, alive, up_factory
from tests.support.config import make_config, write_config

__all__ = ["up_factory"]  # the fixture, re-used from the process tests


def journaled_streams(directory: Path) -> dict[tuple[str, int, str], int]:
    """(publisher, epoch, kind) -> last seq, over every message a durable publisher journaled."""
    last: dict[tuple[str, int, str], int] = {}
    for rec in read(directory):
        for m in BATCH_DECODER.decode(rec.payload):
            key = (m.pub, m.epoch, m.kind)
            last[key] = max(last.get(key, 0), m.seq)
    return last


def committed_streams(db: Path) -> dict[tuple[str, int, str], int]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT publisher, epoch, kind, seq FROM stream_offsets").fetchall()
    return {(p, int(e), k): int(s) for p, e, k, s in rows}


@pytest.mark.slow
def test_up_runs_every_installed_worker_and_stops_in_reverse(tmp_path: Path, up_factory: Any) -> None:
    names = registry.default_workers("sim")
    cfg = make_config(
        tmp_path,
        supervisor={"shutdown_timeout_s": 15.0, "ready_timeout_s": 60.0},
        sim={"rate": 200.0, "markets": 20},
    )
    path = write_config(cfg, tmp_path / "kx.toml")
    up: Up = up_factory(cfg, path)
    ws = up.wait_running(*names, timeout=90)
    assert list(ws) == names, "every installed worker, in the registry's start order"
    pipeline = {"writer", "sim", "connector"} <= set(names)
    if pipeline:
        time.sleep(2.0)  # let market data flow through to the database
    assert up.stop(90) == 0, up.log()

    records = up.log_records()
    stopped = [r["worker"] for r in records if r.get("msg") == "child stopping"]
    assert stopped == names[::-1], "producers first, the bus last"
    exits = {r["worker"]: r["exit_code"] for r in records if r.get("msg") == "child exited"}
    assert exits == dict.fromkeys(names, 0), "every worker drained and exited cleanly"
    assert not [r for r in records if r.get("msg") == "child killed"], "nobody needed SIGKILL"
    for w in ws.values():
        assert not alive(w["pid"])

    if not pipeline:
        pytest.skip(f"writer/sim/connector not all installed ({names}): the commit check needs them")
    # The writer's last batch is committed: every stream the connector journaled is stored up to
    # its last message, and the supervisor's own events (journaled too) are in the database.
    db = tmp_path / "kxfeed.db"
    committed = committed_streams(db)
    connector = journaled_streams(Path(cfg.journal.dir) / "connector")
    assert any(kind == "delta" for _, _, kind in connector), "market data flowed"
    missing = {k: (seq, committed.get(k)) for k, seq in connector.items() if committed.get(k, 0) < seq}
    assert missing == {}, "journaled but not committed: (journal seq, committed seq)"
    with sqlite3.connect(db) as conn:
        events = conn.execute("SELECT worker, event FROM worker_events").fetchall()
    assert ("connector", "spawned") in events and ("bus", "ready") in events
