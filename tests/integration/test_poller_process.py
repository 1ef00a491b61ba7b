"""The poller and the gap filler as real processes (``kxfeed worker poller|gapfill``): they run
against the simulator, stop cleanly on SIGTERM, and the poller's journal lets a writer that
was not running at the time store everything it published."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

from shared.journal import read
from shared.messages import BATCH_DECODER, MarketMeta, PollSnapshot
from tests.support.config import make_config, write_config
from tests.support.control import stats
from tests.support.procs import spawn, stop, stop_all, wait_until


def db_count(db: Path, sql: str) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db) as conn:
            return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:  # the writer has not created the tables yet
        return 0


def test_poller_journal_is_stored_by_a_writer_started_later(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, sim={"markets": 20, "rate": 50.0}, poller={"poll_interval_s": 0.5})
    path = write_config(cfg, tmp_path / "kxfeed.toml")
    procs = [spawn("worker", name, "--config", str(path)) for name in ("bus", "sim")]
    try:
        assert wait_until(lambda: stats(cfg.sim.control).get("ready"), 30)
        poller = spawn("worker", "poller", "--config", str(path), stderr=subprocess.PIPE)
        gapfill = spawn("worker", "gapfill", "--config", str(path))
        procs += [poller, gapfill]
        assert wait_until(lambda: stats(cfg.poller.control).get("snapshots_published", 0) >= 20, 30)
        assert wait_until(lambda: stats(cfg.gapfill.control).get("ready"), 10)
        s = stats(cfg.poller.control)
        assert s["markets"] >= 20 and s["meta_published"] >= 20 and s["rest_errors"] == 0
        assert stop(poller) == 0 and stop(gapfill) == 0
        err = poller.stderr.read().decode() if poller.stderr else ""
        assert "kxfeed-sim-dev" not in err  # the key id is never logged
        journaled = [
            m for rec in read(Path(cfg.journal.dir) / "poller") for m in BATCH_DECODER.decode(rec.payload)
        ]
        metas = {m.ticker for m in journaled if isinstance(m, MarketMeta)}
        polls = [m for m in journaled if isinstance(m, PollSnapshot)]
        assert len(metas) >= 20 and len(polls) >= 20
        # Nothing the poller published reached a writer; the journal still has it all.
        writer = spawn("worker", "writer", "--config", str(path))
        procs.append(writer)
        db = tmp_path / "kxfeed.db"
        assert wait_until(lambda: db_count(db, "SELECT count(*) FROM markets") >= len(metas), 30)
        assert wait_until(lambda: db_count(db, "SELECT count(*) FROM ticks WHERE source = 'poll'") >= 20, 10)
        with sqlite3.connect(db) as conn:
            stored = {t for (t,) in conn.execute("SELECT ticker FROM markets")}
        assert metas <= stored
        assert stop(writer) == 0
    finally:
        stop_all(procs, 10)
