"""The WebSocket itself: a websockets connection that notices server pings, and the handshake.

websockets answers pings on its own and does not tell anyone; the liveness rule
("no frame and no server ping for stale_after_s") needs to know when the last
one came, so :class:`Link` records it as frames are parsed.
"""

from __future__ import annotations

import time
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import InvalidHandshake, InvalidStatus
from websockets.frames import Frame, Opcode


class AuthRejected(Exception):
    """The handshake was refused with 401/403."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class HandshakeFailed(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class Link(ClientConnection):
    """A client connection that remembers when the server last pinged."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.last_ping = time.monotonic()

    def process_event(self, event: Any) -> None:
        if isinstance(event, Frame) and event.opcode is Opcode.PING:
            self.last_ping = time.monotonic()
        super().process_event(event)

    def buffered(self) -> int:
        """Frames received and not yet read: they can be taken without waiting."""
        return len(self.recv_messages.frames)


async def open_link(
    url: str,
    headers: dict[str, str],
    *,
    open_timeout: float,
    max_size: int | None,
    max_queue: int,
    compression: bool,
) -> Link:
    try:
        ws = await websockets.connect(
            url,
            additional_headers=headers,
            open_timeout=open_timeout,
            # Kalshi pings us; our liveness check watches for those pings and for frames.
            ping_interval=None,
            max_size=max_size,
            max_queue=max_queue,
            compression="deflate" if compression else None,
            create_connection=Link,
            close_timeout=2.0,
        )
    except InvalidStatus as exc:
        status = exc.response.status_code
        if status in (401, 403):
            raise AuthRejected(status) from None
        raise HandshakeFailed(f"http_{status}", f"handshake answered HTTP {status}") from None
    except (InvalidHandshake, OSError, TimeoutError) as exc:
        raise HandshakeFailed("connect_failed", f"{type(exc).__name__}: {exc}") from None
    assert isinstance(ws, Link)
    return ws
