"""The stored-sequence audit against a real database (SQLite file and PostgreSQL), written by the
writer's own store: holes per subscription, explained or not by a recorded gap; the gap
records with method and duration; ``kxfeed gaps``; the gap filler's audit metrics."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from services.gapfill.worker import GapfillWorker
from services.writer.batches import open_store
from services.writer.core import WriterCore
from services.writer.rows import MAPPERS
from shared.config import Config, DbConfig
from shared.messages import BookDelta, BookSnapshot, Gap, Message
from shared.store.audit import audit
from shared.store.engine import make_engine
from shared.store.migrate import upgrade
from tests.support.config import make_config, write_config
from tests.support.pg import DB_PARAMS, fresh_db
from tests.support.procs import kxfeed_cmd
from tests.support.synth import stamp

from .test_poller_support import metric

CONN = 1_795_000_000_000_000_000


@pytest.fixture(params=DB_PARAMS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DbConfig]:
    yield from fresh_db(request, tmp_path, "kxgf")


def book(sid: int, seqs: list[int], ticker: str, now: int) -> list[Message]:
    """A snapshot at the first seq, then one delta per further seq."""
    out: list[Message] = [
        BookSnapshot(
            ticker=ticker,
            market_id="m",
            conn=CONN,
            sid=sid,
            xseq=seqs[0],
            yes=[(4000, 100)],
            no=[(5000, 100)],
            ts_exch=now // 1_000_000,
            ts_recv=now,
        )
    ]
    for i, seq in enumerate(seqs[1:]):
        out.append(
            BookDelta(
                ticker=ticker,
                market_id="m",
                conn=CONN,
                sid=sid,
                xseq=seq,
                side="yes",
                price=4000 + 100 * (i % 5 + 1),
                delta=100,
                ts_exch=now // 1_000_000,
                ts_recv=now + i + 1,
            )
        )
    return out


def history(now: int) -> list[Message]:
    ms = now // 1_000_000
    gap = Gap(
        conn=CONN,
        sid=1,
        expected=11,
        received=13,
        tickers=["KXA-1", "KXA-2"],
        reason="seq_gap",
        method="get_snapshot",
        detected_ms=ms - 2000,
        ts_recv=now - 2_000_000_000,
    )
    fixed = msgspec.structs.replace(
        gap, status="recovered", method="rest", recovered_ms=ms - 1500, ts_recv=now - 1_500_000_000
    )
    still = Gap(
        conn=CONN,
        sid=1,
        expected=30,
        received=32,
        tickers=["KXA-1"],
        reason="seq_gap",
        method="get_snapshot",
        detected_ms=ms - 100,
        ts_recv=now - 100_000_000,
    )
    return [
        # sid 1: 1..10, hole 11..12 (after the gap at 11), 13..29, hole 30..31 (gap at 30), 32
        *book(1, [*range(1, 11), *range(13, 30), 32], "KXA-1", now),
        # sid 2: 1..5, hole 6 with no gap recorded, 7..9
        *book(2, [1, 2, 3, 4, 5, 7, 8, 9], "KXB-1", now),
        gap, fixed, still,
    ]  # fmt: skip


async def store(db: DbConfig, msgs: list[Message]) -> None:
    engine = make_engine(db)
    try:
        await upgrade(engine, db)
        st = open_store(engine)
        core = WriterCore({}, {}, lambda pub: True, max_buffer=10**6, stored=MAPPERS.__contains__)
        core.offer(stamp(msgs))
        while (b := core.take(1000)) is not None:
            await st.write(b, time.time_ns() // 1000)
            core.commit(b)
        await st.close()
    finally:
        await engine.dispose()


def test_holes_per_subscription_explained_by_recorded_gaps(db: DbConfig) -> None:
    now = time.time_ns()
    asyncio.run(store(db, history(now)))

    async def go() -> None:
        engine = make_engine(db)
        try:
            res = await audit(engine, datetime.now(UTC) - timedelta(hours=1))
            old = await audit(engine, datetime.now(UTC) + timedelta(hours=1))
        finally:
            await engine.dispose()
        (s1, s2) = res.subscriptions
        assert (s1.sid, s1.first_seq, s1.last_seq, s1.stored) == (1, 1, 32, 28)
        assert s1.holes == [(11, 12), (30, 31)] and s1.unexplained == [] and s1.missing == 4
        assert (s2.sid, s2.holes, s2.unexplained) == (2, [(6, 6)], [(6, 6)])
        assert (res.holes, res.unexplained, res.missing) == (3, 1, 5)
        first, second = res.gaps
        assert (first.expected, first.method, first.tickers) == (11, "rest", ["KXA-1", "KXA-2"])
        assert first.duration_s == pytest.approx(0.5)
        assert (second.expected, second.method, second.recovered, second.duration_s) == (30, "", None, None)
        assert res.methods() == {"rest": 1, "open": 1}
        # Outside the window: the newest connection is still audited, no gap record is listed.
        assert len(old.subscriptions) == 2 and old.gaps == []

    asyncio.run(go())


def test_kxfeed_gaps_prints_holes_and_recoveries(tmp_path: Path, db: DbConfig) -> None:
    asyncio.run(store(db, history(time.time_ns())))
    cfg = make_config(tmp_path, db=msgspec.to_builtins(db))
    path = write_config(cfg, tmp_path / "kxfeed.toml")
    root = Path(__file__).resolve().parents[2]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            kxfeed_cmd("gaps", "--config", str(path), *args),
            cwd=root,
            capture_output=True,
            text=True,
            timeout=60,
        )

    out = run("--since", "1h")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "2 subscriptions, 3 holes (1 unexplained), 5 sequence numbers missing" in text
    assert "missing 11..12 (2)  after gap" in text and "missing 6  UNEXPLAINED" in text
    assert "gaps recorded: 2 (open 1, rest 1)" in text
    assert "seq_gap  2 markets  recovered by rest in 0.500s" in text and "KXA-1  OPEN" in text
    data = json.loads(run("--since", "30m", "--json").stdout)
    assert (data["holes"], data["unexplained"], data["missing"]) == (3, 1, 5)
    assert data["methods"] == {"rest": 1, "open": 1} and data["durations_s"] == [0.5, None]
    bad = run("--since", "yesterday")
    assert bad.returncode == 2 and "30s, 15m, 1h, 2d" in bad.stderr


def test_kxfeed_gaps_without_a_database_creates_none(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    path = write_config(cfg, tmp_path / "kxfeed.toml")
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        kxfeed_cmd("gaps", "--config", str(path)), cwd=root, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2 and "no database" in out.stderr
    assert not (tmp_path / "kxfeed.db").exists()


def test_gap_filler_audit_sets_the_metrics(tmp_path: Path) -> None:
    # No exchange here: the REST URL names a port bound by this test and never listening (a
    # call is refused; nobody else can take the port while the test holds it).
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    cfg: Config = make_config(tmp_path, gapfill={"audit_interval_s": 0.1}, sim={"port": port})
    asyncio.run(store(cfg.db, history(time.time_ns())))

    async def go() -> None:
        w = GapfillWorker(cfg)
        task = asyncio.create_task(w.serve())
        deadline = time.monotonic() + 60
        while w.stats().get("audits", 0) < 1:
            assert time.monotonic() < deadline and not task.done(), w.stats()
            await asyncio.sleep(0.05)
        s = w.stats()
        w.request_stop()
        assert await task == 0
        assert (s["audit_subscriptions"], s["audit_holes"], s["audit_unexplained_holes"]) == (2, 3, 1)
        assert s["audit_missing_seqs"] == 5
        assert metric("kxfeed_gapfill_stored_holes", explained="false") == 1
        assert metric("kxfeed_gapfill_stored_holes", explained="true") == 2
        assert metric("kxfeed_gapfill_stored_missing_seqs") == 5
        assert metric("kxfeed_gapfill_audits_total", result="ok") >= 1

    try:
        asyncio.run(go())
    finally:
        dead.close()
