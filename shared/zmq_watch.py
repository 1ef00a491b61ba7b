"""What ZeroMQ does to a socket's peers behind our back, counted: a socket monitor per socket.

ZeroMQ handles hostile peers itself: a peer that fails the ZMTP handshake (random bytes, an
HTTP request, a port scan) or sends a message over ``ZMQ_MAXMSGSIZE`` is disconnected inside
libzmq and the application never sees a frame of it. The monitor is the only window on that:
``kxfeed_zmq_peer_events_total{socket, event}`` counts each event it reports.

What can and cannot be told apart (libzmq 4.3):

- a peer that is not speaking ZMTP: ``handshake_failed_no_detail`` (it closed or sent bytes
  that end the greeting) or ``handshake_failed_protocol`` (a malformed greeting), each
  followed by ``disconnected``;
- a peer that sent a message over the size limit: only ``disconnected`` after
  ``handshake_succeeded``. libzmq gives no reason with the event, so it is the same event as a
  peer that closed on its own; ``disconnected`` minus the orderly closes you expect is the
  bound on refused messages.
"""

from __future__ import annotations

from typing import Any

import zmq
from prometheus_client import Counter
from zmq.utils.monitor import parse_monitor_message

from shared.log import BurstLog, get_logger

PEER_EVENTS = Counter(
    "kxfeed_zmq_peer_events_total",
    "ZeroMQ socket monitor events (connections accepted, handshakes failed, peers disconnected)",
    ["socket", "event"],
)

#: Events a monitor reports; each becomes the lower-case ``event`` label without ``EVENT_``.
WATCHED = (
    zmq.EVENT_ACCEPTED
    | zmq.EVENT_DISCONNECTED
    | zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_CONNECTED
)
_NAMES: dict[int, str] = {
    zmq.EVENT_ACCEPTED: "accepted",
    zmq.EVENT_DISCONNECTED: "disconnected",
    zmq.EVENT_HANDSHAKE_SUCCEEDED: "handshake_succeeded",
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "handshake_failed_no_detail",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "handshake_failed_protocol",
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "handshake_failed_auth",
    zmq.EVENT_CONNECTED: "connected",
}
_FAILURES = frozenset(
    {
        zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL,
        zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
        zmq.EVENT_HANDSHAKE_FAILED_AUTH,
    }
)

_log = get_logger("zmq")


def event_name(event: int) -> str:
    return _NAMES.get(event, f"event_{event}")


class PeerWatch:
    """Counts the monitor events of one socket under the label ``name``.

    Call :meth:`poll` (non-blocking) when a poller says :attr:`monitor` is readable, or from a
    loop that already wakes up regularly.
    """

    def __init__(self, sock: zmq.Socket[Any], name: str) -> None:
        self.name = name
        self._sock = sock
        #: Register this with a poller (it is of ``sock``'s kind: asyncio or not).
        self.monitor: zmq.Socket[Any] = sock.get_monitor_socket(WATCHED)
        # A blocking view of the same socket, so :meth:`poll` works for an asyncio socket too.
        self._reader: zmq.Socket[bytes] = zmq.Socket.shadow(self.monitor.underlying)
        self.counts: dict[str, int] = {}
        self._burst = BurstLog(_log)

    def handle(self, frames: list[bytes]) -> None:
        try:
            msg = parse_monitor_message(frames)
        except Exception as exc:  # libzmq wrote it; still, a bad one is skipped, not fatal
            self._burst.event(f"{self.name}/monitor", "unreadable monitor message", error=repr(exc))
            return
        event = int(msg["event"])
        label = event_name(event)
        self.counts[label] = self.counts.get(label, 0) + 1
        PEER_EVENTS.labels(self.name, label).inc()
        if event in _FAILURES:
            # The peer is not a ZeroMQ peer of ours (a scanner, random bytes, an HTTP client).
            self._burst.event(
                f"{self.name}/{label}",
                "peer refused by zmq: handshake failed",
                socket=self.name,
                event=label,
                endpoint=msg.get("endpoint", b"").decode(errors="replace"),
            )

    def poll(self, limit: int = 10_000) -> int:
        """Handle every event ready now (a synchronous monitor); returns how many."""
        n = 0
        while n < limit:
            try:
                frames = self._reader.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            self.handle(frames)
            n += 1
        return n

    def close(self) -> None:
        self._burst.flush()
        if not self._sock.closed:
            try:
                self._sock.disable_monitor()
            except zmq.ZMQError as exc:  # the context is going away: nothing left to watch
                _log.debug("monitor not disabled", extra={"ctx": {"socket": self.name, "error": repr(exc)}})
        self.monitor.close(0)
