"""The control server over real sockets: garbage TCP connections, ZeroMQ peers that break the
protocol and oversized messages are answered or dropped and counted; the socket keeps serving."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import zmq
import zmq.asyncio
from prometheus_client import REGISTRY

from shared.control import ControlError, request
from shared.control_server import Args, UnknownCommand
from tests.support.control import Served
from tests.support.hostile import barrage, raw_garbage
from tests.support.procs import wait_until

MAX = 64 * 1024


async def handler(cmd: str, args: Args) -> Any:
    if cmd == "ping":
        return "pong"
    if cmd == "book":
        return {"ticker": str(args["ticker"]), "depth": int(args.get("depth", 10))}
    raise UnknownCommand(cmd)


@pytest.fixture
def served() -> Iterator[Served]:
    s = Served(handler, max_msg_bytes=MAX)
    yield s
    s.stop()


def rejected(reason: str) -> float:
    return REGISTRY.get_sample_value("kxfeed_control_rejected_total", {"reason": reason}) or 0.0


def peer_events(event: str) -> float:
    labels = {"socket": "control", "event": event}
    return REGISTRY.get_sample_value("kxfeed_zmq_peer_events_total", labels) or 0.0


def test_garbage_tcp_connections_leave_the_socket_serving(served: Served) -> None:
    before = peer_events("disconnected")
    raw_garbage(served.endpoint, 20)
    assert served.alive()
    assert request(served.endpoint, "ping", timeout_s=10) == "pong"
    # Every garbage connection ends in a disconnect that the monitor reports.
    assert wait_until(lambda: peer_events("disconnected") - before >= 20, 30), peer_events("disconnected")
    failed = peer_events("handshake_failed_no_detail") + peer_events("handshake_failed_protocol")
    assert failed >= 1, "bytes that are no ZMTP greeting are counted as failed handshakes"


def test_every_protocol_mistake_is_answered_or_dropped_and_counted(served: Served) -> None:
    reasons = ("envelope", "multipart", "decode", "unknown_command", "bad_args")
    before = {r: rejected(r) for r in reasons}
    out = barrage(served.endpoint, max_msg_bytes=MAX, bad_args={"cmd": "book", "args": {"depth": 1}})
    assert out.unanswered == [], "every REQ mistake gets an error reply"
    assert "no_envelope" not in out.replies and "oversized" not in out.replies
    assert all(reply["ok"] is False for reply in out.replies.values()), out.replies
    assert out.replies["multipart"]["error"] == "one frame per request, got 2"
    assert out.replies["unknown_command"]["error"] == "unknown command 'no_such_command' for tester"
    assert out.replies["bad_args"]["error"] == "book: missing argument 'ticker'"
    assert out.replies["deep_nesting"]["error"].startswith("bad request:")
    assert served.alive()
    assert request(served.endpoint, "ping", timeout_s=10) == "pong"
    book = request(served.endpoint, "book", {"ticker": "KX-A"}, timeout_s=10)
    assert book == {"ticker": "KX-A", "depth": 10}
    with pytest.raises(ControlError, match="wrong argument type"):
        request(served.endpoint, "book", {"ticker": "KX-A", "depth": {}}, timeout_s=10)
    after = {r: rejected(r) - before[r] for r in reasons}
    assert after["multipart"] == 1 and after["unknown_command"] == 1
    assert after["bad_args"] == 2
    assert after["decode"] >= 8, after
    # The DEALER's bare message, and ZMTP 1.0 frames parsed out of the garbage, lack the envelope.
    assert after["envelope"] >= 1, after


def test_a_peer_that_leaves_before_its_replies_is_counted_unroutable(served: Served) -> None:
    before = rejected("unroutable")
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        sock = ctx.socket(zmq.DEALER)
        sock.connect(served.endpoint)
        for _ in range(500):
            sock.send_multipart([b"", b'{"cmd": "ping"}'])
        sock.close(2000)  # the requests are flushed, then the peer is gone
    finally:
        ctx.term()
    # Some replies may still have reached the peer before it left: most did not.
    assert wait_until(lambda: rejected("unroutable") - before >= 1, 30), rejected("unroutable")
    assert request(served.endpoint, "ping", timeout_s=10) == "pong"


def test_an_oversized_request_disconnects_its_sender_only(served: Served) -> None:
    before = peer_events("disconnected")
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        big = ctx.socket(zmq.REQ)
        big.setsockopt(zmq.LINGER, 0)
        big.connect(served.endpoint)
        big.send(b"x" * (MAX + 1))
        assert not big.poll(500), "an oversized request is never answered"
        big.close(0)
    finally:
        ctx.term()
    assert wait_until(lambda: peer_events("disconnected") > before, 30)
    assert request(served.endpoint, "ping", timeout_s=10) == "pong"
