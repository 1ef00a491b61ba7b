"""The stream core's side facing one client (pure): its requests (subscribe, unsubscribe, ping)
checked and answered, its errors, the heartbeats, and the list of clients with frames to send.

:class:`~services.gateway.stream.StreamCore` is this plus the fan-out of bus messages; the
index of who takes what is the core's (:meth:`ClientRequests._reindex`).
"""

from __future__ import annotations

from typing import Any

import msgspec

from services.gateway import wire
from services.gateway.live import LiveState
from services.gateway.stream_queue import DropCounts, Limits
from services.gateway.stream_subs import (
    OP_ONLY,
    STREAM_KINDS,
    Client,
    SubscribeOp,
    Subscription,
    UnsubscribeOp,
    decoder_of,
    parse_topics,
)

__all__ = ["MAX_DETAIL", "ClientRequests"]

#: Longest ``detail`` of an error reply: a hostile request is never echoed back whole.
MAX_DETAIL = 200

_ENC = msgspec.json.Encoder()


class ClientRequests:
    limits: Limits
    live: LiveState
    counts: DropCounts
    clients: dict[int, Client]
    #: Clients with new frames (or to close) since the shell last looked.
    woken: list[Client]

    def _reindex(self) -> None:
        raise NotImplementedError

    def _wake(self, client: Client) -> None:
        if not client.woken:
            client.woken = True
            self.woken.append(client)

    def take_woken(self) -> list[Client]:
        woken, self.woken = self.woken, []
        for client in woken:
            client.woken = False
        return woken

    # ---- replies ---------------------------------------------------------------------------
    def _reply(self, client: Client, kind: str, body: dict[str, Any], now_ns: int) -> None:
        if not client.outbox.push_control(kind, _ENC.encode(body), now_ns):
            client.closing = client.closing or "slow_consumer"
        self._wake(client)

    def error(self, client: Client, code: str, detail: str, now_ns: int, sub_id: int | None = None) -> None:
        """Answer a bad request (counted by ``code``)."""
        self.counts.add("client_errors", code)
        body: dict[str, Any] = {"type": "error", "error": code, "detail": detail[:MAX_DETAIL]}
        if sub_id is not None:
            body["id"] = sub_id
        self._reply(client, "error", body, now_ns)

    def heartbeat(self, now_ns: int) -> None:
        frame = _ENC.encode({"type": "heartbeat", "ts": wire.iso_ns(now_ns), "ts_ns": str(now_ns)})
        for client in list(self.clients.values()):
            if not client.outbox.push_control("heartbeat", frame, now_ns):
                client.closing = client.closing or "slow_consumer"
            self._wake(client)

    # ---- requests --------------------------------------------------------------------------
    def _allow(self, client: Client, now_ns: int) -> bool:
        limits = self.limits
        elapsed = max(0, now_ns - client.tokens_ns) / 1e9
        client.tokens = min(float(limits.ops_burst), client.tokens + elapsed * limits.ops_per_s)
        client.tokens_ns = now_ns
        if client.tokens < 1.0:
            return False
        client.tokens -= 1.0
        return True

    def handle(self, client: Client, raw: str | bytes, now_ns: int) -> None:
        """One message from the client: a request answered, or an error answered (never raises)."""
        if len(raw) > self.limits.max_frame_bytes:
            self.error(
                client, "too_large", f"messages are at most {self.limits.max_frame_bytes} bytes", now_ns
            )
            return
        if not self._allow(client, now_ns):
            self.error(client, "rate_limited", f"at most {self.limits.ops_per_s:g} messages/s", now_ns)
            return
        try:
            op = OP_ONLY.decode(raw).op
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
            # A ValidationError is a DecodeError too: the JSON was fine, its shape was not.
            code = "bad_request" if isinstance(exc, msgspec.ValidationError) else "bad_json"
            self.error(client, code, str(exc), now_ns)
            return
        decoder = decoder_of(op)
        if decoder is None:
            self.error(client, "unknown_op", "op must be one of ['ping', 'subscribe', 'unsubscribe']", now_ns)
            return
        try:
            request = decoder.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
            self.error(client, "bad_request", str(exc), now_ns)
            return
        if isinstance(request, SubscribeOp):
            self._subscribe(client, request, now_ns)
        elif isinstance(request, UnsubscribeOp):
            self._unsubscribe(client, request.id, now_ns)
        else:
            body: dict[str, Any] = {"type": "pong", "ts": wire.iso_ns(now_ns), "ts_ns": str(now_ns)}
            if request.id is not None:
                body["id"] = request.id
            self._reply(client, "pong", body, now_ns)

    def _subscribe(self, client: Client, req: SubscribeOp, now_ns: int) -> None:
        limits = self.limits
        prefixes = parse_topics(req.topics)
        if isinstance(prefixes, str):
            allowed = ", ".join(f"{k}." for k in STREAM_KINDS)
            self.error(
                client, "bad_topic", f"topic {prefixes[:40]!r}: one of {allowed} (then a ticker prefix)",
                now_ns, req.id,
            )  # fmt: skip
            return
        if req.id in client.subs:
            self.error(client, "duplicate_id", f"subscription {req.id} exists", now_ns, req.id)
            return
        if len(client.subs) >= limits.max_subscriptions:
            self.error(
                client, "too_many_subscriptions", f"at most {limits.max_subscriptions}", now_ns, req.id
            )
            return
        if len(req.tickers) > limits.max_tickers:
            self.error(
                client, "too_many_tickers", f"at most {limits.max_tickers} per subscription", now_ns, req.id
            )
            return
        sub = Subscription(req.id, prefixes, frozenset(req.tickers), req.interval_ms)
        sub.due_ns = now_ns + sub.interval_ns
        client.subs[sub.id] = sub
        self._reindex()
        ordered = [k for k in STREAM_KINDS if k in sub.kinds]
        entries = list(
            self.live.entries(
                ordered, sorted(sub.tickers) if sub.tickers else None, lambda e: sub.wants(e.kind, [e.ticker])
            )
        )
        self._reply(
            client,
            "subscribed",
            {
                "type": "subscribed",
                "id": sub.id,
                "topics": sub.topics(),
                "tickers": sorted(sub.tickers),
                "interval_ms": req.interval_ms,
                "snapshots": len(entries),
            },
            now_ns,
        )
        head = b'{"type":"snapshot","id":' + sub.id_bytes + b',"topic":'
        for entry in entries:
            name = _ENC.encode(f"{entry.kind}.{entry.ticker}")
            frame = head + name + b',"kind":"' + entry.kind.encode() + b'","data":' + entry.encoded + b"}"
            if not client.outbox.push(sub.id, "snapshot", frame, now_ns):
                client.closing = client.closing or "slow_consumer"
                break
        self.counts.add("snapshots", n=len(entries))
        self.counts.add("subscriptions")

    def _unsubscribe(self, client: Client, sub_id: int, now_ns: int) -> None:
        if client.subs.pop(sub_id, None) is None:
            self.error(client, "unknown_subscription", f"no subscription {sub_id}", now_ns, sub_id)
            return
        self._reindex()
        client.outbox.purge(sub_id)
        self._reply(client, "unsubscribed", {"type": "unsubscribed", "id": sub_id}, now_ns)
