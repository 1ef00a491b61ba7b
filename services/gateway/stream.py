"""The live stream's pure core: clients, their subscriptions, their bounded queues.

No sockets and no clocks: the shell (:mod:`services.gateway.stream_ws`) passes ``now_ns`` in,
feeds bus messages (:meth:`~StreamCore.ingest`, :meth:`~StreamCore.fanout` each, then
:meth:`~StreamCore.seal` per batch; :meth:`~StreamCore.publish` does all three), client text to
:meth:`~StreamCore.handle`, and sends what :meth:`Outbox.take` gives.

A bus message is converted (:mod:`services.gateway.wire`) and encoded once; each matching
subscription gets the same bytes in its frame ``{"type":<kind>,"id":<sub id>,"ticker":..,
"data":{..}}``. With ``interval_ms`` only the newest frame per (kind, market) is kept and
handed over every interval. A ``format=ndjson`` client's subscriptions without one are grouped
with every other taking the same frames (same id, topics, tickers: clients running the same
code): per batch a group's frames are joined once, one per line, and that one payload goes to
each member (a queue entry, or written at once): one step per client per batch, however many
messages it holds.

Each client's queue is an :class:`~services.gateway.stream_queue.Outbox` (bounded, with the
declared slow-consumer policy); a client to be disconnected gets ``closing = "slow_consumer"``.
Every drop, error and refusal is counted in :attr:`StreamCore.counts`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from services.gateway import wire
from services.gateway.live import LiveState, tickers_of
from services.gateway.stream_queue import DropCounts, Limits, Outbox
from services.gateway.stream_requests import ClientRequests
from services.gateway.stream_subs import (
    MAX_ID,
    STREAM_KINDS,
    Client,
    Group,
    Prepared,
    Subscription,
)
from shared.messages import Message

__all__ = ["MAX_ID", "STREAM_KINDS", "Client", "Group", "Prepared", "StreamCore", "Subscription"]


_ENC = msgspec.json.Encoder()


class StreamCore(ClientRequests):
    def __init__(self, limits: Limits, live: LiveState) -> None:
        self.limits = limits
        self.live = live
        self.counts = DropCounts()
        self.clients: dict[int, Client] = {}
        #: kind -> the subscriptions taking it (rebuilt on every (un)subscribe: those are rare).
        self._index: dict[str, list[tuple[Client, Subscription]]] = {}
        self._coalescing: list[tuple[Client, Subscription]] = []
        #: kind -> the ndjson groups taking it, and the groups with frames since the last seal.
        self._groups: dict[str, list[Group]] = {}
        self._filled: list[Group] = []
        #: Clients with new frames (or to close) since the shell last looked.
        self.woken: list[Client] = []
        self._next_id = 1
        self._tails: dict[str, bytes] = {k: f'{{"type":"{k}","id":'.encode() for k in STREAM_KINDS}

    # ---- clients ---------------------------------------------------------------------------
    def connect(self, peer: str, now_ns: int, batch: bool = False) -> Client | None:
        """A new client (``batch``: it reads ndjson frames), or None when there are
        ``max_clients`` already (counted)."""
        if len(self.clients) >= self.limits.max_clients:
            self.counts.add("refused", "max_clients")
            return None
        outbox = Outbox(self.limits, self.counts)
        client = Client(self._next_id, peer, outbox, self.limits, now_ns, batch)
        self._next_id += 1
        self.clients[client.id] = client
        self.counts.add("connects")
        return client

    def disconnect(self, client: Client, reason: str) -> None:
        if self.clients.pop(client.id, None) is None:
            return
        self.counts.add("disconnects", reason)
        if client.subs:
            client.subs.clear()
            self._reindex()

    def _reindex(self) -> None:
        self.seal(0)  # frames already gathered go to the members they were gathered for
        index: dict[str, list[tuple[Client, Subscription]]] = {}
        coalescing: list[tuple[Client, Subscription]] = []
        groups: dict[tuple[Any, ...], Group] = {}
        for client in self.clients.values():
            for sub in client.subs.values():
                if sub.interval_ns:
                    coalescing.append((client, sub))
                elif client.batch:
                    group = groups.get(sub.key())
                    if group is None:
                        group = groups[sub.key()] = Group(sub)
                    group.members.append(client)
                    continue
                for kind in sub.kinds:
                    index.setdefault(kind, []).append((client, sub))
        by_kind: dict[str, list[Group]] = {}
        for group in groups.values():
            for kind in group.sub.kinds:
                by_kind.setdefault(kind, []).append(group)
        self._index = index
        self._coalescing = coalescing
        self._groups = by_kind

    def _takers(self, kind: str) -> list[Client]:
        """Every client with a subscription taking ``kind``."""
        out = [client for client, _ in self._index.get(kind, ())]
        for group in self._groups.get(kind, ()):
            out += group.members
        return out

    # ---- data --------------------------------------------------------------------------------
    def publish(self, msg: Message, now_ns: int) -> None:
        """One bus message: kept as live state, and queued to every subscription that wants it."""
        prepared = self.ingest(msg, now_ns)
        if prepared is not None:
            self.fanout(prepared, now_ns)
            self.seal(now_ns)

    def ingest(self, msg: Message, now_ns: int) -> Prepared | None:
        """Keep ``msg`` as live state and, when a subscription takes its kind, convert and
        encode it once: what :meth:`fanout` needs (None when no subscription takes it)."""
        kind: str = type(msg).__struct_config__.tag  # type: ignore[assignment]
        if kind not in wire.SERVED_KINDS:
            self.counts.add("ignored", type(msg).__name__)
            return None
        if kind not in self._index and kind not in self._groups:
            self.live.observe(msg, kind)  # converted if and when the REST API or a snapshot reads it
            return None
        data = wire.convert(msg)
        encoded = _ENC.encode(data)
        self.live.observe(msg, kind, data, encoded)
        tickers = tickers_of(msg)
        ticker = tickers[0] if len(tickers) == 1 else None
        return Prepared(
            kind, tickers, ticker, b',"ticker":' + _ENC.encode(ticker) + b',"data":' + encoded + b"}"
        )

    def fanout(self, p: Prepared, now_ns: int) -> None:
        """Queue a prepared message to every subscription that wants it (an ndjson group's
        share waits in the group for :meth:`seal`)."""
        kind, tickers, tail = p.kind, p.tickers, p.tail
        head = self._tails[kind]
        for group in self._groups.get(kind, ()):
            gsub = group.sub
            if (gsub.tickers or gsub.prefixes[kind] is not None) and not gsub.wants(kind, tickers):
                continue
            if not group.frames:
                self._filled.append(group)
            group.frames.append(head + gsub.id_bytes + tail)
            group.kinds[kind] = group.kinds.get(kind, 0) + 1
        subs = self._index.get(kind)
        if not subs:
            return
        # Subscriptions with the same id (most clients number theirs from 1) share one frame.
        built: dict[bytes, bytes] = {}
        for client, sub in subs:
            if (sub.tickers or sub.prefixes[kind] is not None) and not sub.wants(kind, tickers):
                continue
            frame = built.get(sub.id_bytes)
            if frame is None:
                frame = built[sub.id_bytes] = head + sub.id_bytes + tail
            if sub.interval_ns:
                self._coalesce(client, sub, kind, p.ticker or "|".join(tickers), frame, now_ns)
                continue
            if not client.outbox.push(sub.id, kind, frame, now_ns):
                client.closing = client.closing or "slow_consumer"
            self._wake(client)

    def seal(self, now_ns: int, send: Callable[[Client, bytes], bool] | None = None) -> None:
        """End of a batch: each group's frames, joined one per line, once. A member with
        nothing queued is offered the payload through ``send`` (the shell writes it at once
        when its transport is not backed up: True); anyone else has it queued."""
        filled, self._filled = self._filled, []
        counts = self.counts
        for group in filled:
            frames, group.frames = group.frames, []
            kinds = tuple(group.kinds.items())
            group.kinds = {}
            payload = b"\n".join(frames)
            n, sub_id = len(frames), group.sub.id
            written = 0
            for client in group.members:
                outbox = client.outbox
                if (
                    send is not None
                    and not outbox.messages
                    and not outbox.control
                    and not outbox.lost
                    and not client.closing
                    and send(client, payload)
                ):
                    written += 1
                    continue
                if not outbox.push_batch(sub_id, kinds, n, payload, now_ns):
                    client.closing = client.closing or "slow_consumer"
                self._wake(client)
            for kind, k in kinds if written else ():  # counted once for the group, not per member
                counts.add("sent", kind, k * written)

    def lost_before_fanout(self, lost: dict[str, int], now_ns: int) -> None:
        """Messages of these kinds were dropped before their fan-out (the hub fell behind the
        bus): every client taking the kind is told in its next ``lost`` notice."""
        for kind, n in lost.items():
            self.counts.add("backlog_dropped", kind, n)
            notified: set[int] = set()
            for client in self._takers(kind):
                if client.id in notified:
                    continue
                notified.add(client.id)
                client.outbox.drop_pending(kind, now_ns, n)
                if client.outbox.overflowed:
                    client.closing = client.closing or "slow_consumer"
                self._wake(client)

    def _coalesce(
        self, client: Client, sub: Subscription, kind: str, key: str, frame: bytes, now_ns: int
    ) -> None:
        held = sub.hold(kind, key, frame, self.limits)
        if held is None:  # its table is full: lost, under the policy like a full queue
            client.outbox.drop_pending(kind, now_ns)
            if client.outbox.overflowed:
                client.closing = client.closing or "slow_consumer"
            self._wake(client)
        elif held:
            self.counts.add("coalesced", kind)

    def flush(self, now_ns: int) -> None:
        """Hand over every coalescing subscription that is due."""
        for client, sub in self._coalescing:
            if sub.due_ns - now_ns > sub.interval_ns:
                sub.due_ns = now_ns  # the clock went back: due now, not an interval too late
            if sub.due_ns > now_ns:
                continue
            # Due again one interval after this hand-over (a late flush is not made up for).
            sub.due_ns = now_ns + sub.interval_ns
            if not sub.pending:
                continue
            frames, sub.pending = sub.pending, {}
            sub.pending_bytes = 0
            for (kind, _), frame in frames.items():
                if not client.outbox.push(sub.id, kind, frame, now_ns):
                    client.closing = client.closing or "slow_consumer"
                    break
            self._wake(client)

    def next_due_ns(self) -> int | None:
        """When :meth:`flush` next has work (None: no coalescing subscription)."""
        return min((sub.due_ns for _, sub in self._coalescing), default=None)

    # ---- what the shell reports ------------------------------------------------------------
    def queued(self) -> tuple[int, int]:
        """(frames, bytes) queued over every client, coalescing tables included."""
        frames = size = 0
        for client in list(self.clients.values()):
            frames += len(client.outbox)
            size += client.outbox.bytes
            for sub in list(client.subs.values()):
                frames += len(sub.pending)
                size += sub.pending_bytes
        return frames, size

    def subscriptions(self) -> int:
        return sum(len(c.subs) for c in list(self.clients.values()))
