"""``ZMQ_MAXMSGSIZE`` on the bus proxy: a 100 MB publish is refused (its sender disconnected by
ZeroMQ, counted by the proxy's socket monitor) and subscribers keep receiving normal messages.

The subscribers themselves carry no limit: a connecting socket that refuses a message never
reconnects (libzmq 4.3), so the proxy, every message's one way in, is where the limit lives."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from shared.bus import Proxy, Publisher, Subscriber
from shared.messages import BATCH_ENCODER, Trade
from shared.zmq_watch import PeerWatch
from tests.integration.test_supervisor_processes import metric
from tests.support.config import make_config, reported_port, write_config
from tests.support.procs import spawn, wait_until

HUGE = 100 * 1024 * 1024


def trade(i: int) -> Trade:
    return Trade(trade_id=str(i), ticker="X", yes_price=4300, no_price=5700, count=100, taker_side="yes")


@pytest.fixture
def ctx() -> Iterator[zmq.Context[zmq.Socket[bytes]]]:
    c: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    yield c
    c.destroy(0)


def received_after(sub: Subscriber, pub: Publisher, first: int, deadline_s: float = 30.0) -> list[Trade]:
    """Publish trades from ``first`` on until the subscriber gets some (its reconnect can take a
    moment after zmq dropped the link); what it got."""
    got: list[Trade] = []
    i = first

    def more() -> bool:
        nonlocal i
        pub.publish(trade(i))
        i += 1
        got.extend(m for m in sub.recv_blocking(0.1) if isinstance(m, Trade))
        return bool(got)

    assert wait_until(more, deadline_s, interval=0.0), "the subscriber receives again"
    return got


def test_the_proxy_refuses_a_100mb_publish_and_subscribers_carry_on(
    tmp_path: Path, ctx: zmq.Context[zmq.Socket[bytes]]
) -> None:
    xsub, xpub = f"ipc://{tmp_path}/xsub", f"ipc://{tmp_path}/xpub"
    proxy = Proxy(ctx, xsub, xpub, hwm=10_000)
    front, _ = proxy.sockets()
    watch = PeerWatch(front, "bus_xsub")
    proxy.start()
    sub = Subscriber(ctx, xpub, ["trade."], join_settle_s=0)
    pub = Publisher(ctx, xsub, "normal")
    hostile = ctx.socket(zmq.PUB)
    hostile.setsockopt(zmq.LINGER, 0)
    hostile.connect(xsub)
    try:
        assert pub.wait_for_subscriber_sync("trade.X", 30)
        assert received_after(sub, pub, 1)
        # A real publisher's frames, only enormous: the proxy refuses it on its size header.
        disconnects = watch.counts.get("disconnected", 0)
        assert wait_until(lambda: watch.poll() >= 0 and watch.counts.get("handshake_succeeded", 0) >= 2, 30)
        hostile.send_multipart([b"trade.X", b"\x91" + b"\x00" * HUGE])
        assert wait_until(lambda: watch.poll() >= 0 and watch.counts.get("disconnected", 0) > disconnects, 60)
        got = received_after(sub, pub, 1_000)
        assert all(len(BATCH_ENCODER.encode([m])) < 1024 for m in got), "only the normal messages"
        assert sub.bad_payloads == 0, "the 100 MB frame never reached the subscriber"
        assert proxy.alive()
    finally:
        hostile.close(0)
        pub.close(0)
        sub.close()
        proxy.stop()
        watch.close()


#: A subscriber on the XPUB side sending a 1 MB subscription, then leaving. It runs in its own
#: process: its XSUB keeps the subscription in a recursive trie that overflows its stack on close.
HOSTILE_SUBSCRIBER = """
import os, sys, time, zmq
sock = zmq.Context().socket(zmq.XSUB)
sock.setsockopt(zmq.LINGER, 0)
sock.connect(sys.argv[1])
time.sleep(0.5)
sock.send(b"\\x01" + b"t" * 1_000_000)
time.sleep(1.0)
os._exit(0)
"""


@pytest.mark.slow
def test_a_huge_subscription_leaves_the_bus_worker_running(
    tmp_path: Path, ctx: zmq.Context[zmq.Socket[bytes]]
) -> None:
    cfg = make_config(tmp_path, bus={"xsub": f"ipc://{tmp_path}/xsub", "xpub": f"ipc://{tmp_path}/xpub"})
    path = write_config(cfg, tmp_path / "kx.toml")
    bus = spawn("worker", "bus", "--config", str(path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    sub = Subscriber(ctx, cfg.bus.xpub, ["trade."], join_settle_s=0)
    pub = Publisher(ctx, cfg.bus.xsub, "normal")
    try:
        assert pub.wait_for_subscriber_sync("trade.X", 60), "the bus came up"
        hostile = subprocess.run(
            [sys.executable, "-c", HOSTILE_SUBSCRIBER, cfg.bus.xpub], timeout=60, capture_output=True
        )
        assert hostile.returncode == 0, hostile.stderr
        # The subscription was refused (today's proxy took it, and crashed once its sender left).
        assert received_after(sub, pub, 1)
        assert bus.poll() is None, "the bus worker is alive"
        assert not pub.has_subscriber("t" * 64), "the huge subscription never reached a publisher"
        text = scrape(reported_port(cfg, "bus"))
        dropped = metric(text, "kxfeed_zmq_peer_events_total", socket="bus_xpub", event="disconnected")
        assert (dropped or 0) >= 1
    finally:
        pub.close(0)
        sub.close()
        if bus.poll() is None:
            bus.send_signal(signal.SIGTERM)
        code = bus.wait(60)
    assert code == 0, f"exit code {code} (-11 is a segfault)"


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text: str = resp.read().decode()
    return text
