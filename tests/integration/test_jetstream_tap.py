"""``kxfeed tap --jetstream`` as a real process against a private nats-server: what the bridge
mirrored, from a start time, across both streams; hostile messages in the stream never crash it."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.bus import stamp
from shared.messages import BATCH_ENCODER, Trade
from tests.integration.test_jetstream_bridge import bridge_config, caught_up, start_bridge, stats
from tests.integration.test_jetstream_rig import NatsServer, journal_ids, spawn_publisher
from tests.support.procs import ROOT, kxfeed_cmd, stop, wait_until

pytestmark = pytest.mark.xdist_group(name="jetstream")


@pytest.fixture(scope="module")
def nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path_factory.mktemp("nats"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def tap(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        kxfeed_cmd("tap", "--config", str(path), "--timeout", "20", *args),
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_tap_reads_what_the_bridge_mirrored_from_a_start_time(tmp_path: Path, nats: NatsServer) -> None:
    cfg, path = bridge_config(tmp_path, nats.url)
    publisher = spawn_publisher(path, "pubT", 600)
    assert publisher.wait(60) == 0
    bridge = start_bridge(path)
    try:
        assert wait_until(lambda: caught_up(stats(cfg)) and stats(cfg)["acked"] > 0, 60), stats(cfg)
    finally:
        assert stop(bridge) == 0
    journaled = journal_ids(tmp_path / "journal", frozenset({"trade"}))
    trades = sum(len(ids) for ids in journaled)
    assert trades > 0
    out = tap(path, "--jetstream", "kxfeed.trade.>", "--since", "1h", "--count", str(trades))
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(lines) == trades and {line["kind"] for line in lines} == {"trade"}
    assert sorted(line["seq"] for line in lines if line["pub"] == "pubT") == sorted(
        seq for ids in journaled for (_, _, _, seq) in ids
    )
    # One subject over both streams (book and events), and a narrow one in one stream.
    wide = tap(path, "--jetstream", "kxfeed.>", "--since", "1h", "--count", "50")
    assert wide.returncode == 0, wide.stderr
    kinds = {json.loads(line)["kind"] for line in wide.stdout.splitlines()}
    assert len(wide.stdout.splitlines()) == 50 and kinds
    # Nothing newer than now: a tap from now on times out with nothing (exit 1, says so).
    quiet = subprocess.run(
        kxfeed_cmd("tap", "--config", str(path), "--timeout", "1", "--jetstream", "kxfeed.trade.>"),
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert quiet.returncode == 1 and "no message" in quiet.stderr


def test_tap_survives_hostile_messages_in_the_stream(tmp_path: Path, nats: NatsServer) -> None:
    _, path = bridge_config(tmp_path, nats.url)

    async def plant() -> None:
        import nats as natspy
        from nats.js.api import StreamConfig

        nc = await natspy.connect(nats.url)
        jsc = nc.jetstream()
        await jsc.add_stream(StreamConfig(name="HOSTILE", subjects=["kxfeed.hostile.>"]))
        good = Trade(trade_id="ok", ticker="KX-OK", yes_price=1, no_price=9999, count=1, taker_side="no")
        stamp([good], "planter", 1)
        for payload, headers in (
            (b"\xc1\xc1\xc1", {"Kx-Kind": "trade"}),
            (b"", None),
            (b"\x91\x92\xa5trade\x01", {"Kx-Kind": "x" * 4000}),
            (BATCH_ENCODER.encode([good]), {"Kx-Kind": "delta", "Nats-Msg-Id": "not:an:id"}),
            (b"\xdd\xff\xff\xff\xff", {"Kx-Kind": ""}),
            (BATCH_ENCODER.encode([good]), {"Kx-Kind": "trade"}),
        ):
            await jsc.publish("kxfeed.hostile.X.Y", payload, headers=headers)
        await nc.close()

    asyncio.run(plant())
    out = tap(path, "--jetstream", "kxfeed.hostile.>", "--since", "10m", "--count", "2")
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [line["trade_id"] for line in lines] == ["ok", "ok"]
    assert "undecodable payload" in out.stderr and "disagrees" in out.stderr
    bad = tap(path, "--jetstream", "kxfeed..>")
    assert bad.returncode == 2 and "not a NATS subject" in bad.stderr
    none = tap(path, "--jetstream", "nosuch.>")
    assert none.returncode == 1 and "no JetStream stream holds" in none.stderr
    when = tap(path, "--jetstream", "kxfeed.>", "--since", "yesterday")
    assert when.returncode == 2 and "--since" in when.stderr
