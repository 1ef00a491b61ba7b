"""``kxfeed up`` stopped and started again on the same data dir keeps storing every kind of row.

The user's view of issue 15/16: the default setup (every installed worker, the simulator and
SQLite) runs, stores, is stopped; started again, every table gets new rows. Before run ids
were mixed into trade ids, the simulator's fixed seed replayed the first run's trade ids and
the writer discarded the second run's trades as duplicates.
"""

from __future__ import annotations

import contextlib
import sqlite3
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from services import registry
from shared.control import ControlError, request
from shared.store.schema import ACCOUNT_TABLES, APPEND_TABLES, STATE_TABLES
from tests.integration.test_supervisor_processes import Up, metric, up_factory
from tests.support.config import make_config, reported_port, write_config
from tests.support.procs import wait_until

__all__ = ["up_factory"]  # the fixture, re-used from the process tests

#: Every kind of row the default setup (the simulator's public feed) stores.
APPEND = [t.name for t in APPEND_TABLES if t not in ACCOUNT_TABLES]
STATE = [t.name for t in STATE_TABLES]
#: Trades the first run stores before it is stopped (about 15 s of the simulator at rate 200).
MIN_FIRST_TRADES = 150


def counts(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return {t: conn.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in APPEND}


def updated(db: Path) -> dict[str, int]:
    """Latest ``updated`` of each state table (upserted: rows are the same markets again, their
    values are new)."""
    with sqlite3.connect(db) as conn:
        return {t: conn.execute(f'SELECT COALESCE(MAX(updated), 0) FROM "{t}"').fetchone()[0] for t in STATE}


def writer_stats(up: Up) -> dict[str, Any]:
    try:
        stats: dict[str, Any] = request(up.cfg.writer.control, "stats", timeout_s=2.0)
    except ControlError:
        return {}
    return stats


def writer_metrics(up: Up) -> str:
    url = f"http://127.0.0.1:{reported_port(up.cfg, 'writer')}/metrics"
    with urllib.request.urlopen(url, timeout=5) as resp:
        text: str = resp.read().decode()
    return text


def run_until_stored(up: Up, names: list[str], db: Path, base: dict[str, int], since: dict[str, int]) -> None:
    """Start-to-stop of one run: every append table grows past ``base``, every state table is
    updated past ``since``; a gap is injected so the gaps table has something to grow by."""
    up.wait_running(*names, timeout=120)
    sim = up.cfg.sim.control

    def gap_seen() -> bool:
        if counts(db)["gaps"] > base.get("gaps", 0):
            return True
        # A gap per try until the connector has recorded one (a first one may hit no book).
        with contextlib.suppress(ControlError):
            request(sim, "inject", {"kind": "gap", "count": 1}, timeout_s=2.0)
        return False

    assert wait_until(gap_seen, 90, interval=2.0), (counts(db), up.log()[-4000:])

    def grown() -> bool:
        now, upd = counts(db), updated(db)
        return all(now[t] > base.get(t, 0) for t in APPEND) and all(upd[t] > since.get(t, 0) for t in STATE)

    assert wait_until(grown, 120, interval=1.0), {
        "counts": counts(db),
        "before": base,
        "updated": updated(db),
        "updated_before": since,
        "writer": writer_stats(up),
    }
    stats = writer_stats(up)
    assert stats.get("rows", 0) > 0, stats


@pytest.mark.slow
def test_a_restart_keeps_storing_every_kind_of_row(tmp_path: Path, up_factory: Any) -> None:
    names = registry.default_workers("sim")
    if not {"sim", "connector", "writer", "arb", "orderbook"} <= set(names):
        pytest.skip(f"the default pipeline is not installed: {names}")
    cfg = make_config(
        tmp_path,
        supervisor={"shutdown_timeout_s": 15.0, "ready_timeout_s": 60.0},
        sim={"rate": 200.0, "markets": 20},
    )
    path = write_config(cfg, tmp_path / "kx.toml")
    db = tmp_path / "kxfeed.db"

    first: Up = up_factory(cfg, path)
    run_until_stored(first, names, db, {}, {})
    # Long enough that a second run replaying the first one's trade ids would replay stored ones:
    # the connector of each run misses the trades made before it subscribed.
    assert wait_until(lambda: counts(db)["trades"] >= MIN_FIRST_TRADES, 120, interval=1.0), counts(db)
    assert first.stop(90) == 0, first.log()[-4000:]
    after_first, updated_first = counts(db), updated(db)

    second: Up = up_factory(cfg, path)
    run_until_stored(second, names, db, after_first, updated_first)
    # The second run's writer (a new process, counters from zero) discarded none of its trades
    # as already stored: the restarted simulator's trade ids are new ones.
    text = writer_metrics(second)
    assert (metric(text, "kxfeed_writer_rows_total", table="trades") or 0) > 0
    duplicates = metric(text, "kxfeed_writer_duplicate_rows_total", table="trades") or 0
    assert duplicates == 0, (duplicates, writer_stats(second))
    assert second.stop(90) == 0, second.log()[-4000:]
