"""The gateway stream's test and bench helpers: bus message factories, and a raw WebSocket
client that can stop reading (a slow consumer whose socket buffers fill, as a real one's do)."""

from __future__ import annotations

import base64
import os
import socket
import struct
from typing import Any

import msgspec

from shared.messages import TopOfBook, Trade


def tob(ticker: str, bid: int = 4300, *, ts_ns: int = 0, xseq: int = 1, pad: int = 0) -> TopOfBook:
    """A valid top of book: bid ``bid``, ask one cent above; ``pad`` sizes make frames longer."""
    ask = bid + 100
    return TopOfBook(
        ticker=ticker,
        xseq=xseq,
        valid=True,
        yes_bid=bid,
        yes_bid_size=2500 + pad,
        yes_ask=ask,
        yes_ask_size=100,
        no_bid=10_000 - ask,
        no_ask=10_000 - bid,
        mid_x2=bid + ask,
        spread=ask - bid,
        ts_recv=ts_ns,
    )


def trade(ticker: str, trade_id: str, price: int = 4300, *, ts_ns: int = 0) -> Trade:
    return Trade(
        trade_id=trade_id,
        ticker=ticker,
        yes_price=price,
        no_price=10_000 - price,
        count=100,
        taker_side="yes",
        ts_recv=ts_ns,
    )


class RawClient:
    """A WebSocket client on a plain socket with a small receive buffer: it reads only when told."""

    def __init__(
        self, port: int, path: str = "/api/v1/stream", rcvbuf: int = 4096, timeout: float = 10.0
    ) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Before connect, so the window the server sees is small from the start.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        self._buf = b""
        while b"\r\n\r\n" not in self._buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            self._buf += chunk
        head, _, self._buf = self._buf.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(f"handshake refused: {head[:80]!r}")

    def send_text(self, text: str | bytes, opcode: int = 0x1) -> None:
        payload = text.encode() if isinstance(text, str) else text
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def send_json(self, obj: Any) -> None:
        self.send_text(msgspec.json.encode(obj))

    def _read(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def recv_frame(self) -> tuple[int, bytes]:
        """(opcode, payload) of the next frame (server frames are never masked or fragmented here)."""
        b0, b1 = self._read(2)
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", self._read(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", self._read(8))
        return b0 & 0x0F, self._read(n)

    def recv_json(self) -> dict[str, Any]:
        """The next text frame, decoded (pings answered, other control frames skipped)."""
        while True:
            opcode, payload = self.recv_frame()
            if opcode == 0x1:
                out: dict[str, Any] = msgspec.json.decode(payload)
                return out
            if opcode == 0x9:
                self.send_text(payload, opcode=0xA)
            elif opcode == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                raise ConnectionError(f"closed by the server: {code} {payload[2:]!r}")

    def close(self) -> None:
        self.sock.close()
