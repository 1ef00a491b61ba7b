"""Hostile peers for a control socket: raw TCP garbage and ZeroMQ peers that break the protocol.

:func:`barrage` runs all of them against one endpoint and says what came back, so a test can
check every mistake was answered (or dropped) and the socket still serves afterwards.
"""

from __future__ import annotations

import os
import random
import socket
from dataclasses import dataclass, field
from typing import Any

import msgspec
import zmq

from shared.control import request_socket

#: A ZMTP 3.0 greeting (NULL mechanism, as server=0) followed by garbage: gets past the
#: signature check, so the garbage reaches libzmq's handshake and decoder, not just its sniffing.
_ZMTP3 = b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\x00") + b"\x00" + b"\x00" * 31


@dataclass
class Outcome:
    """What the hostile peers got back from one endpoint."""

    garbage_connections: int = 0
    replies: dict[str, dict[str, Any]] = field(default_factory=dict)
    unanswered: list[str] = field(default_factory=list)


def raw_address(endpoint: str) -> tuple[int, Any]:
    """The (family, address) a plain socket connects to for a tcp:// or ipc:// endpoint."""
    if endpoint.startswith("tcp://"):
        host, _, port = endpoint[len("tcp://") :].rpartition(":")
        return socket.AF_INET, (host if host not in ("", "*", "0.0.0.0") else "127.0.0.1", int(port))
    if endpoint.startswith("ipc://"):
        return socket.AF_UNIX, endpoint[len("ipc://") :]
    raise ValueError(f"not a tcp:// or ipc:// endpoint: {endpoint}")


def garbage_payloads(rng: random.Random, n: int) -> list[bytes]:
    """``n`` byte strings a control socket may see from a scanner or a confused client."""
    fixed = [
        b"",  # connect and close
        b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
        _ZMTP3 + rng.randbytes(512),
        b"\xff" + rng.randbytes(4096),  # a ZMTP signature byte, then nonsense
        b"\x01\x00" * 2048,  # ZMTP 1.0 frames of length 1
        b"\xff\xff\xff\xff\xff\xff\xff\xff\xff",  # a ZMTP 1.0 long frame claiming 2^64 bytes
    ]
    out = fixed[:n]
    while len(out) < n:
        out.append(rng.randbytes(rng.randrange(1, 65_536)))
    return out


def raw_garbage(endpoint: str, n: int = 20, seed: int = 14) -> int:
    """Open ``n`` raw connections (TCP, or a Unix socket for ipc://) to ``endpoint`` and write
    random bytes into each: libzmq parses both with the same ZMTP engine."""
    family, address = raw_address(endpoint)
    for payload in garbage_payloads(random.Random(seed), n):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            try:
                s.settimeout(5.0)
                s.connect(address)
                s.sendall(payload)
                # Half-close and read until zmq closes its side (or the timeout): the peer has
                # then really handled (and refused) these bytes before the next connection.
                s.shutdown(socket.SHUT_WR)
                s.settimeout(1.0)
                while s.recv(65_536):
                    pass
            except (TimeoutError, ConnectionError, OSError):
                pass  # zmq reset or closed the connection on us: the expected outcome
    return n


def ask(
    ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, frames: list[bytes], timeout_s: float
) -> dict[str, Any] | None:
    """Send ``frames`` as one REQ message; the decoded reply, or None when there was none."""
    sock = request_socket(ctx, endpoint, timeout_s)
    try:
        sock.send_multipart(frames)
        raw = sock.recv()
    except zmq.Again:
        return None
    finally:
        sock.close(0)
    reply: dict[str, Any] = msgspec.json.decode(raw)
    return reply


def request_mistakes(max_msg_bytes: int, bad_args: dict[str, Any] | None = None) -> dict[str, list[bytes]]:
    """Requests a REQ peer can get wrong, each answered with ``ok: false`` (all within the size
    limit: what is over it never reaches the server)."""
    depth = min(100_000, (max_msg_bytes - 64) // 2)
    out = {
        "multipart": [b'{"cmd": "ping"}', b"second frame"],
        "msgpack": [msgspec.msgpack.encode({"cmd": "ping"})],
        "binary": [os.urandom(256)],
        "invalid_utf8": [b'{"cmd": "\xff\xfe"}'],
        "json_array": [b"[1, 2, 3]"],
        "cmd_not_a_string": [b'{"cmd": 5}'],
        "args_not_an_object": [b'{"cmd": "ping", "args": [1]}'],
        "deep_nesting": [b'{"cmd": "ping", "args": {"a": ' + b"[" * depth + b"]" * depth + b"}}"],
        "unknown_command": [b'{"cmd": "no_such_command", "args": {}}'],
        "empty_frame": [b""],
    }
    if bad_args is not None:
        out["bad_args"] = [msgspec.json.encode(bad_args)]
    return out


def dealer_without_envelope(ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, wait_s: float) -> bool:
    """A DEALER sending a request without REQ's empty delimiter; True if anything came back."""
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        sock.send(b'{"cmd": "ping"}')
        return bool(sock.poll(int(wait_s * 1000)))
    finally:
        sock.close(0)


def flood_and_leave(ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, n: int = 200) -> None:
    """A peer that sends ``n`` valid requests and leaves without reading a reply."""
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 1000)
    sock.connect(endpoint)
    for _ in range(n):
        sock.send_multipart([b"", b'{"cmd": "ping"}'])
    sock.close(1000)


def oversized(ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, size: int, timeout_s: float) -> bool:
    """A REQ sending ``size`` bytes; True if it got a reply (it must not: zmq drops the peer)."""
    return ask(ctx, endpoint, [b"x" * size], timeout_s) is not None


def barrage(
    endpoint: str,
    *,
    max_msg_bytes: int,
    bad_args: dict[str, Any] | None = None,
    connections: int = 20,
    timeout_s: float = 10.0,
    ctx: zmq.Context[zmq.Socket[bytes]] | None = None,
) -> Outcome:
    """Everything above against ``endpoint``; replies by name, and the peers left unanswered."""
    ctx = ctx or zmq.Context.instance()
    out = Outcome(garbage_connections=raw_garbage(endpoint, connections))
    for name, frames in request_mistakes(max_msg_bytes, bad_args).items():
        reply = ask(ctx, endpoint, frames, timeout_s)
        if reply is None:
            out.unanswered.append(name)
        else:
            out.replies[name] = reply
    if dealer_without_envelope(ctx, endpoint, 0.3):
        out.replies["no_envelope"] = {"ok": False, "error": "answered a message without an envelope"}
    flood_and_leave(ctx, endpoint)
    if oversized(ctx, endpoint, max_msg_bytes + 1, 1.0):
        out.replies["oversized"] = {"ok": False, "error": "answered an oversized message"}
    # The barrage again after the zmq peers: garbage interleaved with real clients' leftovers.
    out.garbage_connections += raw_garbage(endpoint, connections // 2, seed=41)
    return out
