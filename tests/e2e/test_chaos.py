"""Chaos, shortened: under ``kxfeed up`` random workers are SIGKILLed, the simulator drops the
connection and skips seqs; afterwards nothing is lost or duplicated, every book equals the truth
and the supervisor never gave up. The only rows excused are those tests/e2e/proof.py allows, each
within its bound (sent at most 200 ms before a connector kill; superseded by a post-gap snapshot
within 10 s); every ticker message is checked one by one like the other kinds; every trade the
exchange made is stored once, those no connection carried (a kill, a disconnect, a trade-channel
seq skip) backfilled from REST."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e import chaos
from tests.e2e.harness import System
from tests.e2e.proof import settle
from tests.support.procs import wait_until

#: The issue's chaos runs 5 minutes (``bench/chaos.py``); the suite's version is this long.
CHAOS_S = 14.0


@pytest.mark.slow
def test_kills_disconnects_and_seq_skips_lose_nothing(tmp_path: Path) -> None:
    system = System(tmp_path, sim={"rate": 200.0})
    try:
        system.start()
        plan = chaos.Plan(seconds=CHAOS_S, kill_every_s=3.0, disconnect_every_s=5.0, min_skips=2, seed=11)
        out = chaos.run(system, plan)
        # every killed worker came back (the supervisor restarted them, it did not give up)
        assert system.proc is not None and system.proc.poll() is None, system.log_tail()
        assert sum(out.kills.values()) >= 4 and out.disconnects >= 1 and out.seq_skips >= 2, out
        assert out.trade_skips >= 1, "a trade-channel seq skip: its trade comes back by REST only"
        # the last one killed may still be starting again: the truth is read once it is back
        assert wait_until(lambda: set(system.states().values()) == {"running"}, 60), system.states()
        result = settle(system, timeout=40.0, killed=out.killed_conns)
        restarts = {n: w["restarts"] for n, w in system.workers().items()}
        for name, n in out.kills.items():
            assert restarts[name] >= n, f"{name} killed {n}x, restarted {restarts[name]}x"
        assert system.stop() == 0, system.log_tail()
    finally:
        system.kill()
    summary = result.summary()
    print(f"excused: {result.excuses_text()}")
    assert not [r for r in system.log_records() if "intensity exceeded" in str(r.get("msg"))]
    assert result.info["withheld"] >= 2, "the seq skips happened"
    assert result.info["truncated"] == 0, "the truth is complete"
    # Lost: sent, not stored, and neither in flight inside a killed connector nor a delta the
    # connector drops by design while its market waits for the snapshot after a seq skip, each
    # within its bound. Tickers are gated like the rest.
    missing = {k: d["missing"][:5] for k, d in result.diff.items() if d["missing"]}
    assert result.tickers_not_stored() == 0, f"tickers without a row: {missing.get('ticker')} {summary}"
    assert result.lost() == 0, (
        f"lost: {missing} {summary} kills: {out.timeline} killed conns: {out.killed_conns}; "
        f"excused: {result.excuses_text()}"
    )
    assert result.duplicated_or_foreign() == 0, f"duplicated or wrong: {summary}"
    assert result.books == {}, f"books differ from the truth: {dict(list(result.books.items())[:5])}"
