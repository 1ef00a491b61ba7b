"""The bridge's pure core: what a journal record becomes in JetStream, and the PubAck ledger.

No sockets, no clocks, no global metrics: the actor shell (``worker.py``) feeds records in,
sends what :meth:`AckLedger.next_batch` hands out, reports each PubAck, and writes the cursor
positions :meth:`AckLedger.advance` returns.

The cursor rule: a journal's cursor moves over a record only when that record and every record
before it is acknowledged by JetStream (or is of a kind the bridge does not mirror). So a bridge
killed at any moment, or a NATS server lost with PubAcks in flight, re-sends from the cursor, and
the re-sent records carry the same ``Nats-Msg-Id`` (:mod:`shared.jetstream`) for the server to drop.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import NamedTuple

import msgspec

from shared import jetstream as js
from shared.journal import Position
from shared.messages import DECODE_ERRORS, KINDS, Message

_RAW_LIST = msgspec.msgpack.Decoder(list[msgspec.Raw])
_ONE: msgspec.msgpack.Decoder[Message] = msgspec.msgpack.Decoder(Message)

WAITING, INFLIGHT, ACKED = 0, 1, 2
_KIND_OF: dict[type, str] = {cls: kind for kind, cls in KINDS.items()}


class Outgoing(NamedTuple):
    """One JetStream message: a journal record as it is published."""

    stream: str
    subject: str
    msg_id: str
    kind: str
    payload: bytes
    msgs: int  # bus messages in the frame
    ts_recv: int  # the frame's last message's receive time (ns)
    #: The NATS header block (``NATS/1.0`` + Nats-Msg-Id + Kx-Kind), built once per record.
    headers: bytes = b""


def header_block(msg_id: str, kind: str) -> bytes:
    """The HPUB header block; both values are checked token text (no CR/LF can get in)."""
    return b"NATS/1.0\r\n%b: %b\r\n%b: %b\r\n\r\n" % (
        js.MSG_ID_HEADER.encode(), msg_id.encode(), js.KIND_HEADER.encode(), kind.encode()
    )


class Planned(NamedTuple):
    out: Outgoing | None  # None: a kind the bridge does not mirror (or a frame that did not decode)
    msgs: int
    bad: bool


class Planner:
    """Journal record -> :class:`Outgoing` for the configured retention classes."""

    def __init__(self, prefix: str, stream_of_kind: dict[str, str]) -> None:
        self.prefix = prefix
        self.stream_of_kind = dict(stream_of_kind)
        #: topic -> subject: a market's frames all map to the same subject, escape it once.
        self._subjects: dict[str, str] = {}
        self._pubs: set[str] = set()  # publisher ids already checked

    def plan(self, payload: bytes) -> Planned:
        try:
            raws = _RAW_LIST.decode(payload)
            if not raws:
                return Planned(None, 0, True)
            last = _ONE.decode(raws[-1])
        except DECODE_ERRORS:
            return Planned(None, 0, True)
        kind = _KIND_OF[type(last)]
        stream = self.stream_of_kind.get(kind)
        if stream is None:
            return Planned(None, len(raws), False)
        pub = last.pub
        if pub not in self._pubs:
            if not js.valid_pub(pub):  # it goes into a header line: never anything but an id
                return Planned(None, len(raws), True)
            if len(self._pubs) > 10_000:
                self._pubs.clear()
            self._pubs.add(pub)
        topic = last.topic()
        subject = self._subjects.get(topic)
        if subject is None:
            if len(self._subjects) > 200_000:  # bounded: tickers come and go over months
                self._subjects.clear()
            subject = self._subjects[topic] = js.subject(self.prefix, topic)
        mid = f"{pub}:{last.epoch}:{kind}:{last.seq}"  # js.msg_id, inlined: once per record
        out = Outgoing(stream, subject, mid, kind, payload, len(raws), last.ts_recv, header_block(mid, kind))
        return Planned(out, len(raws), False)


def frame_messages(payload: bytes) -> int:
    """Messages in a frame, without decoding them (0 when it does not decode)."""
    try:
        return len(_RAW_LIST.decode(payload))
    except DECODE_ERRORS:
        return 0


class PendingRecord:
    """A journal record on its way: waiting, in flight (with its token) or acknowledged."""

    __slots__ = ("end", "msgs", "out", "pub", "state", "token")

    def __init__(self, pub: str, end: Position, out: Outgoing | None, msgs: int) -> None:
        self.pub = pub
        self.end = end
        self.out = out
        self.msgs = msgs
        self.state = ACKED if out is None else WAITING
        self.token = 0


class AckLedger:
    """Records read and not yet covered by a cursor, per publisher, in journal order."""

    def __init__(self, max_inflight: int) -> None:
        self.max_inflight = max_inflight
        self._held: dict[str, deque[PendingRecord]] = {}
        self._queue: deque[PendingRecord] = deque()
        #: token -> entry, in send order (dicts keep insertion order: the first is the oldest).
        self._inflight: dict[int, PendingRecord] = {}
        self._sent_at: dict[int, float] = {}
        self._next_token = 0
        self.held_records = 0
        self.held_msgs = 0  # bus messages in held records not yet acknowledged
        self.held_bytes = 0  # payload bytes of held records not yet acknowledged

    # ---- reading side ------------------------------------------------------------------------
    def add(self, pub: str, end: Position, out: Outgoing | None, msgs: int) -> None:
        entry = PendingRecord(pub, end, out, msgs)
        self._held.setdefault(pub, deque()).append(entry)
        self.held_records += 1
        if out is not None:
            self.held_msgs += msgs
            self.held_bytes += len(out.payload)
            self._queue.append(entry)

    # ---- sending side ------------------------------------------------------------------------
    def room(self) -> int:
        return max(0, self.max_inflight - len(self._inflight))

    def next_batch(self, now: float, limit: int | None = None) -> list[tuple[int, Outgoing]]:
        """Records to publish now, each with the token its PubAck will be matched by."""
        n = min(self.room(), len(self._queue))
        if limit is not None:
            n = min(n, limit)
        out: list[tuple[int, Outgoing]] = []
        queue, inflight, sent_at = self._queue, self._inflight, self._sent_at
        for _ in range(n):
            entry = queue.popleft()
            self._next_token += 1
            tok = self._next_token
            entry.state = INFLIGHT
            entry.token = tok
            inflight[tok] = entry
            sent_at[tok] = now
            assert entry.out is not None
            out.append((tok, entry.out))
        return out

    def unsend(self, tokens: Iterable[int]) -> None:
        """Records handed out but not actually sent (the connection went first): back in line."""
        back = [self._inflight.pop(t) for t in tokens if t in self._inflight]
        for t in tokens:
            self._sent_at.pop(t, None)
        for entry in reversed(back):
            entry.state = WAITING
            self._queue.appendleft(entry)

    def ack(self, tok: int) -> PendingRecord | None:
        """JetStream stored the record sent with ``tok``; None for a token no longer in flight
        (an ack that arrived after a rewind: harmless, the record is sent again and dropped as a
        duplicate by the server)."""
        entry = self._inflight.pop(tok, None)
        self._sent_at.pop(tok, None)
        if entry is None:
            return None
        entry.state = ACKED
        self.held_msgs -= entry.msgs
        if entry.out is not None:
            self.held_bytes -= len(entry.out.payload)
        return entry

    def nack(self, tok: int) -> PendingRecord | None:
        """The server refused the record: it stays unacknowledged; the caller rewinds later."""
        entry = self._inflight.pop(tok, None)
        self._sent_at.pop(tok, None)
        if entry is not None:
            entry.state = WAITING
        return entry

    def oldest_inflight_sent(self) -> float | None:
        for tok in self._sent_at:
            return self._sent_at[tok]
        return None

    def inflight(self) -> int:
        return len(self._inflight)

    def waiting(self) -> int:
        return len(self._queue)

    def rewind(self) -> int:
        """Forget what is in flight and queue every unacknowledged record again, in journal order
        per publisher. Returns how many records will be sent again."""
        again = sum(1 for e in self._inflight.values())
        self._inflight.clear()
        self._sent_at.clear()
        queue: deque[PendingRecord] = deque()
        for entries in self._held.values():
            for entry in entries:
                if entry.state != ACKED:
                    entry.state = WAITING
                    queue.append(entry)
        self._queue = queue
        return again

    # ---- cursor side -------------------------------------------------------------------------
    def advance(self) -> dict[str, Position]:
        """Drop each publisher's acknowledged prefix; the new cursor of each one that moved."""
        moved: dict[str, Position] = {}
        for pub, entries in self._held.items():
            last: Position | None = None
            while entries and entries[0].state == ACKED:
                last = entries.popleft().end
                self.held_records -= 1
            if last is not None:
                moved[pub] = last
        return moved

    def oldest_unacked_ts(self) -> int | None:
        """Receive time (ns) of the oldest record not yet acknowledged, over all publishers."""
        oldest: int | None = None
        for entries in self._held.values():
            for entry in entries:
                if entry.state != ACKED and entry.out is not None:
                    ts = entry.out.ts_recv
                    if oldest is None or ts < oldest:
                        oldest = ts
                    break
        return oldest
