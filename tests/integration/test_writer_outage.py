"""Database outages under load: the writer keeps its position, retries with capped backoff,
sheds its buffer past the bound, and catches up from the journal: nothing lost, nothing twice.

PostgreSQL is reached through a TCP proxy the test cuts (connections reset, new ones
refused); SQLite is locked by another connection (BEGIN EXCLUSIVE)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from shared.messages import Message
from tests.integration.test_writer_process import (
    Harness,
    assert_stored_exactly,
    harness_factory,
    kinds_of,
    publish,
)
from tests.support.pg import drop_schema
from tests.support.procs import wait_until
from tests.support.synth import mixed
from tests.support.tcpproxy import TcpProxy

__all__ = ["harness_factory"]  # a fixture: imported to be used here

OUTAGE_S = 5.0


@pytest.fixture
def pg_proxy(pg_url: str) -> Iterator[tuple[TcpProxy, str]]:
    """A cuttable proxy to the test PostgreSQL and the URL through it."""
    url = make_url(pg_url)
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    yield proxy, url.set(port=proxy.port).render_as_string(hide_password=False)
    proxy.close()


@pytest.fixture
def pg_schema(pg_url: str) -> Iterator[str]:
    schema = f"kxt_{uuid.uuid4().hex[:12]}"
    yield schema
    asyncio.run(drop_schema(pg_url, schema))


def run_under_load(
    h: Harness, outage: tuple[Callable[[], None], Callable[[], None]], seed: int
) -> list[Message]:
    """Publish ~5k msg/s for 1 s, then through an outage, then 1 s more."""
    begin, end = outage
    pub = h.publisher("synth")
    assert pub.wait_for_subscriber_sync("delta.", 30), h.log_text()
    msgs = mixed(int(5000 * (2 + OUTAGE_S)), seed=seed, duplicates=0.02)
    per_tick = 50  # messages per 10 ms
    started = time.monotonic()
    cut_at, back_at = 1.0, 1.0 + OUTAGE_S
    state = "before"
    for i in range(0, len(msgs), per_tick):
        pub.publish_many(msgs[i : i + per_tick])
        elapsed = time.monotonic() - started
        if state == "before" and elapsed >= cut_at:
            begin()
            state = "down"
        elif state == "down" and elapsed >= back_at:
            end()
            state = "after"
        time.sleep(max(0.0, started + (i / per_tick + 1) * 0.01 - time.monotonic()))
    if state == "down":
        end()
    h.wait_stored(pub, kinds_of(msgs), timeout=60)
    return msgs


def check_recovered(h: Harness, msgs: list[Message], *, shed: bool) -> None:
    assert_stored_exactly(h, msgs)
    assert (
        h.metric("kxfeed_writer_retries_total", error="transient")
        + h.metric("kxfeed_writer_retries_total", error="timeout")
        >= 2
    )
    assert h.metric("kxfeed_writer_outage_seconds_total") >= OUTAGE_S * 0.5
    assert h.metric("kxfeed_writer_db_up") == 1
    assert h.stats()["lost"] == 0
    if shed:
        assert h.metric("kxfeed_writer_messages_total", outcome="shed") > 0
        assert h.metric("kxfeed_writer_replays_total", reason="overflow") >= 1
    else:
        assert h.metric("kxfeed_writer_messages_total", outcome="shed") == 0
    assert h.stop_writer() == 0


@pytest.mark.postgres
@pytest.mark.parametrize("shed", [False, True], ids=["buffered", "shed"])
def test_postgres_cut_under_load(
    pg_proxy: tuple[TcpProxy, str], pg_schema: str, harness_factory: Callable[..., Harness], shed: bool
) -> None:
    proxy, url = pg_proxy
    h = harness_factory(
        {"url": url, "schema": pg_schema},
        batch_rows=500,
        max_buffer_rows=2000 if shed else 200_000,
        retry_initial_s=0.05,
        retry_max_s=0.5,
        write_timeout_s=5.0,
    )
    h.start_writer()
    assert wait_until(h.ready, 30, 0.1), h.log_text()
    msgs = run_under_load(h, (proxy.cut, proxy.restore), seed=21)
    check_recovered(h, msgs, shed=shed)


def test_sqlite_locked_under_load(tmp_path: Path, harness_factory: Callable[..., Harness]) -> None:
    path = tmp_path / "kx.db"
    h = harness_factory(
        {"url": f"sqlite+aiosqlite:///{path}", "sqlite_busy_timeout_ms": 100},
        batch_rows=500,
        max_buffer_rows=2000,
        retry_initial_s=0.05,
        retry_max_s=0.5,
    )
    h.start_writer()
    assert wait_until(h.ready, 30, 0.1), h.log_text()
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    def lock() -> None:
        blocker.execute("BEGIN EXCLUSIVE")

    def unlock() -> None:
        blocker.execute("COMMIT")

    msgs = run_under_load(h, (lock, unlock), seed=22)
    blocker.close()
    check_recovered(h, msgs, shed=True)


@pytest.mark.postgres
def test_postgres_unreachable_at_start(
    pg_proxy: tuple[TcpProxy, str], pg_schema: str, harness_factory: Callable[..., Harness]
) -> None:
    proxy, url = pg_proxy
    proxy.cut()
    h = harness_factory({"url": url, "schema": pg_schema, "connect_timeout_s": 1.0}, retry_max_s=0.5)
    pub = h.publisher("synth")
    h.start_writer()
    msgs = mixed(2000, seed=23)
    publish(pub, msgs)  # nobody subscribed yet: these are in the journal only
    time.sleep(2.0)
    assert not h.ready()
    proxy.restore()
    assert wait_until(h.ready, 30, 0.1), h.log_text()
    h.wait_stored(pub, kinds_of(msgs))
    assert_stored_exactly(h, msgs)
    assert h.metric("kxfeed_writer_retries_total", error="connect") >= 1
    assert h.stop_writer() == 0
