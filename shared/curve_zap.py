"""The ZAP handler of a context's CURVE servers: admits only the configured client public keys.

libzmq asks ``inproc://zeromq.zap.01`` of the server socket's context about every CURVE
handshake; :meth:`Curve.serve <shared.curve.Curve.serve>` starts this before the server binds,
and sets ``ZMQ_ZAP_ENFORCE_DOMAIN`` so that a server whose handler is gone refuses every key
(libzmq's default would be to admit any). It runs in its own thread (the
bus proxy's sockets are in a thread too, and a handshake must not wait on an event loop).

A refused handshake is counted in ``kxfeed_curve_rejected_total{socket, reason}`` (``socket`` is
the server's ZAP domain, a name we set; ``reason``: ``unknown_key``, ``mechanism``, ``malformed``)
and logged once per peer address, with the key's fingerprint, never the key. A client with no
keys never reaches ZAP (the mechanisms differ at the greeting): the server's socket monitor
counts it (``kxfeed_zmq_peer_events_total{event="handshake_failed_protocol"}``).
"""

from __future__ import annotations

import threading
from typing import Any

import zmq
from prometheus_client import Counter
from zmq.utils import z85

from shared.log import get_logger

REJECTED = Counter(
    "kxfeed_curve_rejected_total",
    "CURVE handshakes refused by the ZAP handler (a client key not in [curve] allowed_clients)",
    ["socket", "reason"],
)
ZAP_ENDPOINT = "inproc://zeromq.zap.01"
#: Peers logged one by one; past this many distinct addresses, one line says the rest are not.
MAX_LOGGED_PEERS = 1024

_log = get_logger("curve")


def fingerprint(public: bytes) -> str:
    """What a log line may show of a public key: its first 8 Z85 characters."""
    return public[:8].decode("ascii", "replace")


def decide(frames: list[bytes], allowed: frozenset[bytes]) -> tuple[list[bytes], str, str, str]:
    """The reply to one ZAP request, and (reason refused or "", domain, peer address). Pure."""
    if len(frames) < 6:
        # Not from libzmq (nothing else can reach an inproc endpoint of ours): answered anyway.
        rid = frames[1] if len(frames) > 1 else b""
        return [b"1.0", rid, b"500", b"malformed ZAP request", b"", b""], "malformed", "", ""
    _version, rid, domain, address, _identity, mechanism = frames[:6]
    dom, peer = domain.decode(errors="replace"), address.decode(errors="replace")
    if mechanism != b"CURVE" or len(frames) < 7 or len(frames[6]) != 32:
        return [b"1.0", rid, b"400", b"CURVE only", b"", b""], "mechanism", dom, peer
    key = z85.encode(frames[6])
    if key not in allowed:
        return [b"1.0", rid, b"400", b"unknown client key", b"", b""], "unknown_key", dom, peer
    # user_id: the key's fingerprint, enough to tell clients apart in a message's metadata.
    return [b"1.0", rid, b"200", b"OK", fingerprint(key).encode(), b""], "", dom, peer


class ZapHandler:
    """Answers ZAP requests of ``ctx``'s sockets until :meth:`stop` or the context ends."""

    def __init__(self, ctx: zmq.Context[Any], allowed: frozenset[bytes]) -> None:
        self.allowed = allowed
        self.rejected: dict[str, int] = {}
        self._ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.shadow(ctx.underlying)
        self._stop_addr = f"inproc://kxfeed-zap-stop-{id(self)}"
        self._logged: set[str] = set()
        self._bound = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="curve-zap", daemon=True)
        self._thread.start()
        self._bound.wait()
        if self._error is not None:
            raise self._error

    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            rep = self._ctx.socket(zmq.REP)
            rep.setsockopt(zmq.LINGER, 0)
            stop = self._ctx.socket(zmq.PAIR)
            stop.setsockopt(zmq.LINGER, 0)
            rep.bind(ZAP_ENDPOINT)
            stop.bind(self._stop_addr)
        except zmq.ZMQError as exc:  # another handler holds the endpoint in this context
            self._error = exc
            self._bound.set()
            return
        self._bound.set()
        poller = zmq.Poller()
        poller.register(rep, zmq.POLLIN)
        poller.register(stop, zmq.POLLIN)
        try:
            while True:
                ready = dict(poller.poll())
                if stop in ready:
                    return
                if rep in ready:
                    self._answer_one(rep)
        except zmq.ContextTerminated:
            pass
        except Exception as exc:  # the servers fail closed from here on: say so, loudly
            _log.error(
                "ZAP handler stopped: every CURVE handshake of this process is refused",
                exc_info=exc,
                extra={"ctx": {"error": repr(exc)}},
            )
        finally:
            rep.close(0)
            stop.close(0)

    def _answer_one(self, rep: zmq.Socket[bytes]) -> None:
        frames = rep.recv_multipart()
        try:
            reply, reason, domain, peer = decide(frames, self.allowed)
        except Exception as exc:  # decide is total; should it fail, refuse (REP must still answer)
            _log.error("ZAP request not understood", exc_info=exc, extra={"ctx": {"error": repr(exc)}})
            reply, reason, domain, peer = (
                [b"1.0", b"", b"500", b"internal error", b"", b""],
                "malformed",
                "",
                "",
            )
        rep.send_multipart(reply)
        if reason:
            self._refused(reason, domain, peer, frames)

    def _refused(self, reason: str, domain: str, peer: str, frames: list[bytes]) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        REJECTED.labels(domain or "unknown", reason).inc()
        if peer in self._logged or len(self._logged) > MAX_LOGGED_PEERS:
            return
        self._logged.add(peer)
        if len(self._logged) > MAX_LOGGED_PEERS:
            _log.warning(
                "CURVE handshakes refused from many peers: further peers are counted, not logged",
                extra={"ctx": {"socket": domain, "peers": MAX_LOGGED_PEERS}},
            )
            return
        key = frames[6] if len(frames) > 6 and len(frames[6]) == 32 else b""
        _log.warning(
            "CURVE handshake refused",
            extra={
                "ctx": {
                    "socket": domain,
                    "peer": peer,
                    "reason": reason,
                    "client_key": f"{fingerprint(z85.encode(key))}..." if key else "",
                }
            },
        )

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        try:
            poke = self._ctx.socket(zmq.PAIR)
            poke.setsockopt(zmq.LINGER, 0)
            poke.connect(self._stop_addr)
            poke.send(b"")
            poke.close()
        except zmq.ZMQError:  # the context is going away: the thread ends with it
            return
        self._thread.join(2.0)
