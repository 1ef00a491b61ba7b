"""The bus proxy: XSUB (publishers connect) and XPUB (subscribers connect), forwarding in a
thread, with the message size limits that keep one hostile peer from reaching the rest; CURVE
servers beyond loopback (:mod:`shared.curve`)."""

from __future__ import annotations

import threading

import zmq

from shared.curve import Curve, current

#: Default ``ZMQ_MAXMSGSIZE`` of the proxy's XSUB (``[bus] max_msg_bytes``): a peer that sends a
#: bigger message is disconnected by ZeroMQ on the message's size header, before anything is
#: allocated, so one huge publish never reaches (and never doubles the memory of) a subscriber.
#: 60x the largest possible order-book snapshot (259 KB). Only the proxy's bound sockets carry
#: it: a *connecting* socket (Publisher, Subscriber) that refuses a message treats it as a
#: protocol error and never reconnects (libzmq 4.3), which would leave a subscriber deaf for good.
#: The proxy is every message's one way in, so its limit covers every subscriber.
MAX_MSG_BYTES = 16 * 1024 * 1024
#: ``ZMQ_MAXMSGSIZE`` of the proxy's XPUB, whose only input is subscription frames (one byte and a
#: topic prefix; topics are ``<kind>.<ticker>``, well under 200 bytes). Not a bus message limit:
#: libzmq's XSUB keeps the subscriptions it forwards in a recursive trie as deep as the prefix is
#: long, and one 256 KiB subscription overflowed the proxy thread's stack when its subscriber left
#: (a segfault of the bus worker, libzmq 4.3.5). 4 KiB keeps that trie shallow.
SUBSCRIPTION_MAX_BYTES = 4096


def bind_proxy(
    ctx: zmq.Context[zmq.Socket[bytes]],
    xsub: str,
    xpub: str,
    hwm: int,
    max_msg_bytes: int = MAX_MSG_BYTES,
    curve: Curve | None = None,
) -> tuple[zmq.Socket[bytes], zmq.Socket[bytes]]:
    """The proxy's two sockets, bound; CURVE servers where an endpoint is not loopback."""
    curve = curve or current()
    front = ctx.socket(zmq.XSUB)
    back = ctx.socket(zmq.XPUB)
    for sock in (front, back):
        sock.setsockopt(zmq.SNDHWM, hwm)
        sock.setsockopt(zmq.RCVHWM, hwm)
        sock.setsockopt(zmq.LINGER, 0)
    # What publishers send; and what subscribers send (subscriptions only).
    front.setsockopt(zmq.MAXMSGSIZE, max_msg_bytes)
    back.setsockopt(zmq.MAXMSGSIZE, min(max_msg_bytes, SUBSCRIPTION_MAX_BYTES))
    curve.serve(front, xsub, "bus_xsub")
    curve.serve(back, xpub, "bus_xpub")
    front.bind(xsub)
    back.bind(xpub)
    return front, back


class Proxy:
    """XSUB/XPUB forwarder running ``zmq.proxy_steerable`` in a thread (it releases the GIL)."""

    def __init__(
        self,
        ctx: zmq.Context[zmq.Socket[bytes]],
        xsub: str,
        xpub: str,
        hwm: int,
        max_msg_bytes: int = MAX_MSG_BYTES,
        curve: Curve | None = None,
    ) -> None:
        self._ctx = ctx
        self._front, self._back = bind_proxy(ctx, xsub, xpub, hwm, max_msg_bytes, curve)
        self._ctl_addr = f"inproc://kxfeed-proxy-ctl-{id(self)}"
        self._ctl = ctx.socket(zmq.PAIR)
        self._ctl.bind(self._ctl_addr)
        self._thread = threading.Thread(target=self._run, name="bus-proxy", daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        peer = self._ctx.socket(zmq.PAIR)
        peer.connect(self._ctl_addr)
        try:
            zmq.proxy_steerable(self._front, self._back, None, peer)
        except zmq.ContextTerminated:
            pass
        except BaseException as exc:  # surfaced through .error and the worker's health
            self.error = exc
        finally:
            peer.close(0)

    def sockets(self) -> tuple[zmq.Socket[bytes], zmq.Socket[bytes]]:
        """(XSUB, XPUB), for setting up socket monitors: before :meth:`start` only (after it,
        the proxy thread owns them)."""
        return self._front, self._back

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 2.0) -> None:
        if self._thread.is_alive():
            self._ctl.send(b"TERMINATE")
            self._thread.join(timeout)
        for sock in (self._ctl, self._front, self._back):
            sock.close(0)
