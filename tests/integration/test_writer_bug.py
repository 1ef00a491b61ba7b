"""A bug in the writer's row building is not an outage: the writer crashes with the
traceback, the supervisor restarts it, and the restarted writer replays the journal, so
every row is stored exactly once. Real ``kxfeed up``, the real bus worker, the real writer
process (with the bug injected by ``tests.support.buggy_writer``), SQLite."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import zmq

from shared.bus import Publisher
from shared.config import Config
from shared.journal import JournalWriter
from shared.store.engine import make_engine
from tests.integration.test_supervisor_processes import Up, supervised_config, up_factory
from tests.support.procs import wait_until
from tests.support.synth import expected_tables, mixed, read_tables

__all__ = ["up_factory"]  # the fixture, re-used from the process tests

BUG_AT_SEQ = 1500


def read(cfg: Config, tables: list[str]) -> dict[str, set[tuple[Any, ...]]]:
    async def go() -> dict[str, set[tuple[Any, ...]]]:
        engine = make_engine(cfg.db)
        try:
            return await read_tables(engine, tables)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_a_bug_in_row_building_crashes_restarts_and_replays(tmp_path: Path, up_factory: Any) -> None:
    marker = tmp_path / "bug-fired"
    path = tmp_path / "kx.toml"

    def children(cfg: Config) -> list[dict[str, Any]]:
        writer = [sys.executable, "-m", "tests.support.buggy_writer", str(marker), str(BUG_AT_SEQ)]
        writer += ["worker", "writer", "--config", str(path)]
        return [{"name": "bus"}, {"name": "writer", "command": writer}]

    cfg, written = supervised_config(tmp_path, children)
    assert written == path
    up: Up = up_factory(cfg, path)
    up.wait_running("bus", "writer", timeout=60)

    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    jw = JournalWriter(Path(cfg.journal.dir) / "synth")
    pub = Publisher(ctx, cfg.bus.xsub, "synth", journal=jw)
    try:
        assert pub.wait_for_subscriber_sync("delta.", 30), up.log()
        msgs = mixed(6000, seed=21, duplicates=0.05)
        for i in range(0, len(msgs), 50):
            pub.publish_many(msgs[i : i + 50])
        assert pub.next_seq("delta") - 1 > BUG_AT_SEQ

        # The writer that met the bug exits non-zero and is restarted.
        assert wait_until(lambda: up.workers().get("writer", {}).get("restarts", 0) >= 1, 60), up.log()
        assert marker.exists()
        want = expected_tables(msgs)
        stored = {k: pub.next_seq(k) - 1 for k in {m.kind for m in msgs}}

        def all_stored() -> bool:
            try:
                got = read(cfg, ["stream_offsets"])["stream_offsets"]
            except Exception:
                return False
            offsets = {(r[0], r[1], r[2]): r[3] for r in got}
            return all(offsets.get((pub.pub_id, pub.epoch, k)) == seq for k, seq in stored.items())

        assert wait_until(all_stored, 60, 0.2), up.log()[-4000:]
        got = read(cfg, list(want))
        got["worker_events"] = {r for r in got["worker_events"] if r[0] == "synthetic"}
        for table, rows in want.items():
            missing, extra = rows - got[table], got[table] - rows
            assert not missing and not extra, f"{table}: {len(missing)} missing, {len(extra)} extra"
    finally:
        pub.close(0)
        jw.close()
        ctx.destroy(0)

    log = up.log()
    # The wrong-shaped row fails the writer where it is first touched: building the batch's
    # hourly counts (IndexError, in main), packing the book deltas into runs (ValueError: the
    # columns differ in length, in the flusher) or the database statement (ProgrammingError).
    # Either way it is a bug: traceback, exit 1, no retry, and no drain after it.
    crashed = "batch write failed on a bug" if "batch write failed on a bug" in log else "worker crashed"
    assert crashed in log
    assert "Traceback" in log and any(e in log for e in ("ProgrammingError", "IndexError", "ValueError"))
    assert "batch write failed; retrying" not in log, "a bug must not be retried as an outage"
    exits = [r for r in up.log_records() if r.get("msg") == "child exited" and r.get("worker") == "writer"]
    assert exits and exits[0]["exit_code"] == 1
    restarted = log.split(crashed, 1)[1]
    assert "journal replay done reason=start" in restarted
    assert up.stop(60) == 0, up.log()[-3000:]
