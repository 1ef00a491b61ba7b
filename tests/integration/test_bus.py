"""The bus between real processes, drop accounting, bad payloads, worker lifecycle."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest
import zmq

from shared.bus import Publisher, Subscriber
from shared.config import Config
from shared.control import ControlError, request
from shared.messages import BATCH_ENCODER, KINDS, BookDelta, Trade
from tests.support.busproxy import proxied
from tests.support.config import ipc_endpoint, make_config, reported_port, write_config
from tests.support.procs import ROOT, spawn, wait_until


def _bus_up(cfg: Config) -> bool:
    try:
        return bool(request(cfg.busproxy.control, "ping", timeout_s=0.5))
    except ControlError:
        return False


@pytest.fixture
def bus_proc(tmp_path: Path) -> tuple[Config, Path, subprocess.Popen[bytes]]:  # type: ignore[misc]
    cfg = make_config(tmp_path)
    path = write_config(cfg, tmp_path / "kxfeed.toml")
    proc = spawn("bus", "--config", str(path))
    assert wait_until(lambda: _bus_up(cfg), timeout=15), "bus worker did not come up"
    yield cfg, path, proc
    if proc.poll() is None:
        proc.terminate()
        proc.wait(10)


def test_100k_messages_of_every_kind_between_processes_in_order(
    bus_proc: tuple[Config, Path, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    cfg, _, _ = bus_proc
    n = 100_000
    out = tmp_path / "sub.json"
    peer = [sys.executable, "-m", "tests.integration.bus_peer"]
    sub = subprocess.Popen([*peer, "sub", cfg.bus.xpub, str(n), str(out)], cwd=ROOT)
    pub = subprocess.Popen([*peer, "pub", cfg.bus.xsub, str(n)], cwd=ROOT)
    assert pub.wait(60) == 0
    assert sub.wait(60) == 0
    summary = json.loads(out.read_text())
    assert summary["got"] == n
    assert summary["dropped"] == 0
    assert summary["in_order"] is True
    assert set(summary["per_kind"]) == set(KINDS)
    assert sum(summary["per_kind"].values()) == n


def test_overflowed_subscriber_reports_exact_drop_count(tmp_path: Path) -> None:
    with proxied(tmp_path, hwm=50) as (ctx, xsub, xpub):
        # It floods the moment it subscribes: count from the first message (no join hand-over here).
        sub = Subscriber(ctx, xpub, ["trade."], rcvhwm=50, join_settle_s=0)
        pub = Publisher(ctx, xsub, "flood", sndhwm=50)
        try:
            assert pub.wait_for_subscriber_sync("trade.X", 5)
            n = 20_000
            for i in range(n):  # one frame each, while the subscriber does not read
                pub.publish(
                    Trade(trade_id=str(i), ticker="X", yes_price=1, no_price=9999, count=1, taker_side="yes")
                )
            time.sleep(0.5)
            received = 0
            while batch := sub.recv_blocking(0.5):
                received += len(batch)
            # One more after the backlog drained: a tail drop is only visible once a later message arrives.
            pub.publish(
                Trade(trade_id="last", ticker="X", yes_price=1, no_price=9999, count=1, taker_side="yes")
            )
            last = sub.recv_blocking(5)
            received += len(last)
            assert last and last[-1].seq == n + 1
            assert sub.dropped > 0
            assert sub.dropped == n + 1 - received
        finally:
            pub.close(0)
            sub.close()


def test_gaps_right_after_joining_a_stream_are_its_hand_over_not_drops(tmp_path: Path) -> None:
    # Publishers filter on their side, so a whole-kind subscriber that joins while another takes
    # the kind in part ("trade." vs "trade.A") sees only that part until its subscription arrives:
    # gaps. Here the frames come straight from a socket, with the gaps such a hand-over leaves.
    # The window is a deadline, never a duration asserted: a roomy one holds on a loaded machine,
    # and a second subscriber whose window is already over (0 s) shows a gap after it is a loss.
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    endpoint = ipc_endpoint(tmp_path, "raw")
    raw = ctx.socket(zmq.PUB)
    raw.bind(endpoint)
    joining = Subscriber(ctx, endpoint, ["trade."], join_settle_s=120.0)
    joined = Subscriber(ctx, endpoint, ["trade."], join_settle_s=0.0)

    def send(seq: int) -> None:
        m = Trade(trade_id=str(seq), ticker="A", yes_price=1, no_price=9999, count=1, taker_side="yes")
        for name, value in (("pub", "p"), ("epoch", 1), ("seq", seq)):
            msgspec.structs.force_setattr(m, name, value)
        raw.send_multipart([b"trade.A", BATCH_ENCODER.encode([m])])

    try:
        got: dict[Subscriber, list[int]] = {joining: [], joined: []}
        seq = 1
        while not all(got.values()):  # until both are connected (frames sent before are not seen)
            send(seq)
            for sub, seen in got.items():
                seen += [m.seq for m in sub.recv_blocking(0.05)]
            seq += 1
        first = seq - 1  # both connected by then: from it on, both see the same stream
        for gap in (3, 2, 5):  # the part the newcomer saw before its subscription landed
            seq += gap
            send(seq)
        for sub, seen in got.items():
            while seen[-1] != seq:
                batch = sub.recv_blocking(10)
                assert batch, f"only {seen} arrived"
                seen += [m.seq for m in batch]
        tails = {sub: [x for x in seen if x >= first] for sub, seen in got.items()}
        assert tails[joining] == tails[joined] == [first, first + 4, first + 6, first + 11]
        assert joining.dropped == 0, "gaps inside the join window are the hand-over"
        assert joined.dropped == 3 + 1 + 4, "the same gaps once joined are losses"
    finally:
        joining.close()
        joined.close()
        raw.close(0)
        ctx.destroy(0)


def test_asyncio_subscriber_drains_everything_ready_per_wakeup_and_uses_configured_marks(
    tmp_path: Path,
) -> None:
    with proxied(tmp_path, hwm=100_000) as (ctx, xsub, xpub):
        sub = Subscriber(ctx, xpub, ["delta."], rcvhwm=12_345, max_batch=100_000)
        pub = Publisher(ctx, xsub, "p", sndhwm=23_456)

        async def run() -> list[int]:
            assert await pub.wait_for_subscriber("delta.T")
            n = 5000
            for i in range(n):
                pub.publish(
                    BookDelta(
                        ticker="T", market_id="m", conn=1, sid=1, xseq=i, side="yes", price=100, delta=1
                    )
                )
            await asyncio.sleep(0.3)  # let everything arrive before the first wake-up
            sizes = []
            got = 0
            while got < n:
                batch = await asyncio.wait_for(sub.recv(), 5)
                sizes.append(len(batch))
                got += len(batch)
            return sizes

        try:
            sizes = asyncio.run(run())
            assert sum(sizes) == 5000
            assert sizes[0] > 1000, sizes  # one wake-up took the whole ready backlog, not one message
            assert sub._sock.getsockopt(zmq.RCVHWM) == 12_345
            assert pub._sock.getsockopt(zmq.SNDHWM) == 23_456
            assert sub.dropped == 0
        finally:
            pub.close(0)
            sub.close()


def test_undecodable_payload_is_counted_and_skipped(tmp_path: Path) -> None:
    with proxied(tmp_path, hwm=1000) as (ctx, xsub, xpub):
        sub = Subscriber(ctx, xpub, ["trade."])
        rogue = ctx.socket(zmq.PUB)
        rogue.connect(xsub)
        pub = Publisher(ctx, xsub, "good")
        try:
            assert pub.wait_for_subscriber_sync("trade.X", 5)
            time.sleep(0.3)  # the rogue PUB has no subscription handshake to wait on
            rogue.send_multipart([b"trade.X", b"\xc1not msgpack"])
            rogue.send_multipart([b"trade.X", msgspec.msgpack.encode([["trade", "wrong", "shape"]])])
            rogue.send_multipart([b"trade.X"])
            time.sleep(0.2)
            pub.publish(
                Trade(trade_id="ok", ticker="X", yes_price=1, no_price=9999, count=1, taker_side="no")
            )
            got = []
            deadline = time.monotonic() + 5
            while not got and time.monotonic() < deadline:
                got = sub.recv_blocking(0.5)
            assert [m.trade_id for m in got] == ["ok"]  # type: ignore[union-attr]
            assert sub.bad_payloads == 3
        finally:
            rogue.close(0)
            pub.close(0)
            sub.close()


def test_worker_answers_control_and_stops_on_sigterm_within_deadline(
    bus_proc: tuple[Config, Path, subprocess.Popen[bytes]],
) -> None:
    cfg, _, proc = bus_proc
    pong = request(cfg.busproxy.control, "ping")
    assert pong["worker"] == "bus" and pong["pid"] == proc.pid
    stats = request(cfg.busproxy.control, "stats")
    assert stats["ready"] is True
    with pytest.raises(ControlError, match="unknown command"):
        request(cfg.busproxy.control, "frobnicate")
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(cfg.busproxy.drain_deadline_s + 2) == 0
    assert time.monotonic() - start < cfg.busproxy.drain_deadline_s + 2


def test_worker_serves_metrics(bus_proc: tuple[Config, Path, subprocess.Popen[bytes]]) -> None:
    import urllib.request

    cfg, _, _ = bus_proc
    body = (
        urllib.request.urlopen(f"http://127.0.0.1:{reported_port(cfg, 'bus')}/metrics", timeout=5)
        .read()
        .decode()
    )
    assert 'kxfeed_uptime_seconds{worker="bus"}' in body
    assert 'kxfeed_ready{worker="bus"} 1.0' in body


def test_heartbeats_arrive_on_the_bus(bus_proc: tuple[Config, Path, subprocess.Popen[bytes]]) -> None:
    cfg, _, proc = bus_proc
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sub = Subscriber(ctx, cfg.bus.xpub, ["hb."])
    try:
        got = []
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            got = sub.recv_blocking(0.5)
        assert got and got[0].worker == "bus" and got[0].pid == proc.pid and got[0].ready  # type: ignore[union-attr]
    finally:
        sub.close()
        ctx.destroy(0)


def test_config_typo_fails_with_message_naming_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "typo.toml"
    bad.write_text('[bus]\nxpbu = "tcp://127.0.0.1:1"\n')
    res = subprocess.run(
        [sys.executable, "-m", "services.cli.main", "config", "check", str(bad)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ},
    )
    assert res.returncode == 2
    assert "xpbu" in res.stderr and "[bus]" in res.stderr and str(bad) in res.stderr
