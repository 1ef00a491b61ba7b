"""The JetStream bridge as real processes: a journaling publisher, ``kxfeed worker jetstream`` and a
private nats-server. The bridge is SIGKILLed mid-stream, NATS is frozen (SIGSTOP: the bridge's
pings go unanswered, it drops the connection and reconnects) and stopped and started again on its
store; at the end the streams hold every journaled record of a mirrored kind exactly once."""

from __future__ import annotations

import signal
import subprocess
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.config import Config
from shared.journal import read_cursor
from tests.e2e.checks import exported_names, opt_in_ops_names
from tests.integration.test_jetstream_rig import (
    QUICK,
    NatsServer,
    journal_ids,
    mirrored_kinds,
    read_stream_sync,
    spawn_publisher,
    stream_counts,
)
from tests.support import control
from tests.support.config import make_config, reported_port, write_config
from tests.support.procs import spawn, stop, wait_until

pytestmark = pytest.mark.xdist_group(name="jetstream")


@pytest.fixture
def nats(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def bridge_config(tmp: Path, url: str, **extra: Any) -> tuple[Config, Path]:
    cfg = make_config(
        tmp,
        jetstream={
            "enabled": True,
            "servers": [url],
            **QUICK,
            **extra,
        },
    )
    return cfg, write_config(cfg, tmp / "kx.toml")


def stats(cfg: Config) -> dict[str, Any]:
    return control.stats(cfg.jetstream.control, timeout_s=2.0)


def caught_up(s: dict[str, Any]) -> bool:
    """Every journal read, nothing read and not acknowledged."""
    return (
        bool(s)
        and s["unread_bytes"] == 0
        and s["lag_messages"] == 0
        and s["inflight"] == 0
        and s["held_records"] == 0
    )


def stored_records(url: str) -> int:
    return sum(stream_counts(url).values())


def start_bridge(path: Path) -> subprocess.Popen[bytes]:
    return spawn("worker", "jetstream", "--config", str(path))


def test_every_record_is_mirrored_exactly_once_through_kills_and_outages(
    tmp_path: Path, nats: NatsServer
) -> None:
    cfg, path = bridge_config(tmp_path, nats.url)
    publisher = spawn_publisher(path, "pubA", 16_000, rate=2_500.0)
    bridge = start_bridge(path)
    try:
        # 1. The bridge is killed mid-stream and started again: it resumes from its cursor.
        assert wait_until(lambda: stored_records(nats.url) > 300, 60)
        bridge.send_signal(signal.SIGKILL)
        bridge.wait(10)
        bridge = start_bridge(path)
        before = stored_records(nats.url)
        assert wait_until(lambda: stored_records(nats.url) > before + 300, 60)

        # 2. NATS freezes: pings go unanswered, the bridge drops the connection; then it thaws.
        nats.pause()
        try:
            assert wait_until(lambda: stats(cfg).get("connected") == 0, 60), stats(cfg)
        finally:
            nats.resume()
        assert wait_until(lambda: stats(cfg).get("connected") == 1, 60), stats(cfg)
        before = stored_records(nats.url)
        assert wait_until(lambda: stored_records(nats.url) > before + 300, 60)

        # 3. NATS stops mid-stream and comes back on its store (on a port of its own choosing, so
        #    the bridge, killed meanwhile, comes back with the new address).
        nats.stop()
        assert wait_until(lambda: stats(cfg).get("connected") == 0, 60), stats(cfg)
        bridge.send_signal(signal.SIGKILL)
        bridge.wait(10)
        url = nats.start()
        cfg, path = bridge_config(tmp_path, url)
        bridge = start_bridge(path)

        assert publisher.wait(120) == 0
        expected = journal_ids(tmp_path / "journal", mirrored_kinds())
        assert wait_until(lambda: stored_records(url) >= len(expected), 120), stored_records(url)
        assert wait_until(lambda: caught_up(stats(cfg)), 60), stats(cfg)
        s = stats(cfg)
        # Every name ops/ reads of the bridge is on its /metrics (the default run has no bridge).
        port = reported_port(cfg, "jetstream")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as page:
            assert opt_in_ops_names("jetstream") - exported_names(page.read().decode()) == set()
        assert stop(bridge) == 0
    finally:
        for p in (bridge, publisher):
            if p.poll() is None:
                p.kill()
                p.wait()

    stored = read_stream_sync(url)
    got = Counter(tuple(m.ids) for m in stored)
    want = Counter(tuple(ids) for ids in expected)
    assert len(stored) == len(expected), "one JetStream message per journal record"
    assert max(got.values()) == 1, [k for k, n in got.items() if n > 1][:3]
    assert got == want
    ids = Counter(m.msg_id for m in stored)
    assert max(ids.values()) == 1
    for m in stored:
        pub, epoch, kind, seq = m.ids[-1]
        assert m.msg_id == f"{pub}:{epoch}:{kind}:{seq}" and m.kind_header == kind
        assert m.subject.startswith(f"kxfeed.{kind}.")
        assert m.stream == ("KXFEED_BOOK" if kind in ("snap", "delta") else "KXFEED_EVENTS")
    # The cursor is at the journal's end: retention may take every mirrored segment.
    cursor = read_cursor(tmp_path / "journal" / "pubA", "jetstream")
    assert cursor is not None and cursor.offset > 0
    assert s["acked"] > 0 and s["held_records"] == 0


def test_the_bridge_waits_for_a_server_that_is_not_there_yet(tmp_path: Path) -> None:
    """Started before NATS: it reads and counts its lag, and mirrors everything once NATS is up."""
    server = NatsServer(tmp_path / "nats")
    cfg, path = bridge_config(tmp_path, "nats://127.0.0.1:1")  # nothing listens on port 1
    publisher = spawn_publisher(path, "pubB", 1_500)
    assert publisher.wait(60) == 0
    bridge = start_bridge(path)
    try:
        assert wait_until(lambda: stats(cfg).get("lag_messages", 0) > 1_000, 60), stats(cfg)
        assert stats(cfg)["connected"] == 0 and stats(cfg)["acked"] == 0
        assert stop(bridge) == 0
        url = server.start()
        cfg, path = bridge_config(tmp_path, url)
        bridge = start_bridge(path)
        expected = journal_ids(tmp_path / "journal", mirrored_kinds())
        assert wait_until(lambda: caught_up(stats(cfg)) and stats(cfg)["acked"] > 0, 60), stats(cfg)
        assert stored_records(url) == len(expected)
        assert stop(bridge) == 0
    finally:
        if bridge.poll() is None:
            bridge.kill()
            bridge.wait()
        server.stop()


def test_a_refused_stream_setting_is_a_config_error(tmp_path: Path, nats: NatsServer) -> None:
    """Three replicas on a single server: the server refuses, the worker exits 78 with its words."""
    _, path = bridge_config(
        tmp_path, nats.url, streams=[{"name": "KXFEED_R3", "kinds": ["trade"], "replicas": 3}]
    )
    bridge = start_bridge(path)
    try:
        assert bridge.wait(60) == 78
    finally:
        if bridge.poll() is None:
            bridge.kill()
            bridge.wait()


def test_a_bridge_that_lost_its_cursor_sends_everything_again_and_the_server_keeps_one_copy(
    tmp_path: Path, nats: NatsServer
) -> None:
    """The worst re-send there is (a kill before any cursor write): every record goes again, each
    with the Nats-Msg-Id it had, and the server answers each one 'duplicate'."""
    cfg, path = bridge_config(tmp_path, nats.url)
    assert spawn_publisher(path, "pubD", 1_200).wait(60) == 0
    expected = journal_ids(tmp_path / "journal", mirrored_kinds())

    def all_acked() -> bool:
        s = stats(cfg)
        return caught_up(s) and s["acked"] == len(expected)

    bridge = start_bridge(path)
    try:
        assert wait_until(all_acked, 60), stats(cfg)
        assert stats(cfg)["duplicates"] == 0
        assert stop(bridge) == 0
        for name in ("jetstream", ".jetstream.prev"):
            (tmp_path / "journal" / "pubD" / "consumers" / name).unlink(missing_ok=True)
        bridge = start_bridge(path)
        assert wait_until(all_acked, 60), stats(cfg)
        assert stats(cfg)["duplicates"] == len(expected)
        assert stop(bridge) == 0
    finally:
        if bridge.poll() is None:
            bridge.kill()
            bridge.wait()
    assert stored_records(nats.url) == len(expected)


def test_a_frame_over_the_servers_max_payload_is_counted_and_passed(tmp_path: Path) -> None:
    """The server would cut the connection on it (for ever, after every reconnect): the bridge
    counts it, logs it and goes on with the rest."""
    from shared.bus import stamp
    from shared.journal import JournalWriter
    from shared.messages import BATCH_ENCODER, BookSnapshot, Trade

    server = NatsServer(tmp_path / "nats", config="max_payload: 4096\n")
    server.start()
    cfg, path = bridge_config(tmp_path, server.url)
    trades = [
        Trade(trade_id=f"t{i}", ticker="KX-A", yes_price=4300, no_price=5700, count=100, taker_side="yes")
        for i in range(4)
    ]
    stamp(trades, "pubL", 1)
    big = BookSnapshot(ticker="KX-A", market_id="m", conn=1, sid=1, xseq=1,
                       yes=[(p, 100) for p in range(100, 9900, 10)], no=[])  # fmt: skip
    stamp([big], "pubL", 1)
    payload = BATCH_ENCODER.encode([big])
    assert len(payload) > 4096
    journal = JournalWriter(tmp_path / "journal" / "pubL")
    journal.append([BATCH_ENCODER.encode([t]) for t in trades[:2]] + [payload])
    journal.append([BATCH_ENCODER.encode([t]) for t in trades[2:]])
    journal.close()
    bridge = start_bridge(path)
    try:
        assert wait_until(lambda: caught_up(stats(cfg)) and stats(cfg)["too_large"] == 1, 60), stats(cfg)
        assert stats(cfg)["acked"] == 4
        assert stop(bridge) == 0
        assert stream_counts(server.url) == {"KXFEED_BOOK": 0, "KXFEED_EVENTS": 4}
    finally:
        if bridge.poll() is None:
            bridge.kill()
            bridge.wait()
        server.stop()
