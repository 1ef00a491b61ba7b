"""The writer's pure core: stream positions, the buffer, batches, lag.

A *stream* is one publisher's messages of one kind in one epoch: ``(publisher, epoch,
kind)``, numbered 1, 2, 3, ... by the publisher. For each stream the core keeps three
positions (last seq):

- ``committed``: stored in the database (stream_offsets, same transaction as the rows);
- ``taken``: handed to the store in a batch (committed, or being written);
- ``accepted``: in the buffer or further.

A message at or below ``accepted`` is a re-delivery and is skipped. A message past a
hole (seq > accepted + 1) from a publisher with a journal is *deferred*: not taken
live, and a journal replay is requested; the replay fills the hole in order. When the
journal cannot fill it (no journal, pruned, or a hole inside the journal itself) the
core accepts the message and counts the missing seqs as lost: a stream never stalls.

Past ``max_buffer`` messages (the database is failing and the buffer keeps growing)
the core *sheds*: it drops the buffered messages that the journal can replay, rewinds
``accepted`` to ``taken`` and defers everything recoverable until the replay.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from services.writer.rows import HOUR_NS, HOUR_US, UNSTORED_KINDS, BatchBuilder, PollContent, Row
from shared.messages import KINDS, Message
from shared.store.schema import APPEND

#: message class -> kind tag (a dict lookup is cheaper than the ``kind`` property per row)
TAG: dict[type, str] = {cls: tag for tag, cls in KINDS.items()}

StreamKey = tuple[str, int, str]  # publisher, epoch, kind


@dataclass(slots=True)
class Batch:
    """What one database transaction writes."""

    rows: dict[str, list[Row]]
    hours: dict[str, set[int]]
    upserts: list[tuple[str, tuple[str, ...], list[Row]]]
    #: stream -> (last seq, its ts_recv ns): the positions this batch moves to.
    offsets: dict[StreamKey, tuple[int, int]]
    messages: int
    unchanged_polls: int
    oldest_recv_ns: int
    newest_recv_ns: int

    def row_count(self) -> int:
        return sum(len(r) for r in self.rows.values()) + sum(len(u[2]) for u in self.upserts)


@dataclass(slots=True)
class OfferResult:
    accepted: int = 0
    duplicates: int = 0
    deferred: int = 0
    #: (stream, missing seq count) for every hole accepted as lost.
    lost: list[tuple[StreamKey, int]] = field(default_factory=list)
    ignored: int = 0
    #: Durable kinds known not to be stored (UNSTORED_KINDS), skipped on purpose.
    unstored: int = 0
    shed: int = 0


class WriterCore:
    def __init__(
        self,
        committed: dict[StreamKey, int],
        polls: dict[str, PollContent],
        recoverable: Callable[[str], bool],
        *,
        max_buffer: int,
        stored: Callable[[type], bool],
    ) -> None:
        self.committed = dict(committed)
        self.taken = dict(committed)
        self.accepted = dict(committed)
        self.seen = dict(committed)
        self.polls = dict(polls)
        self.recoverable = recoverable
        self.max_buffer = max_buffer
        self.stored = stored
        self.buffer: list[Message] = []
        #: Live holes waiting for a replay, and the ones the last replay was asked to fill.
        self._holes: dict[StreamKey, int] = {}
        self._tried: dict[StreamKey, int] = {}
        self.shedding = False
        self.replay_reason: str | None = None
        #: stream -> ts_recv (ns) of its oldest message not yet committed (for lag).
        self._behind_since: dict[StreamKey, int] = {}

    # ---- intake ------------------------------------------------------------------------------
    def position(self, key: StreamKey) -> int:
        return self.accepted.get(key, 0)

    def request_replay(self, reason: str) -> None:
        if self.replay_reason is None:
            self.replay_reason = reason

    def offer(self, msgs: Iterable[Message], *, replay: bool = False) -> OfferResult:
        """Take messages in arrival order; ``replay`` = they come from the journal."""
        res = OfferResult()
        buf = self.buffer
        before = len(buf)
        append = buf.append
        accepted = self.accepted
        # Shedding defers every journaled message: no contiguous fast path then.
        fast = replay or not self.shedding
        key: StreamKey | None = None
        last_cls: type | None = None
        last_pub = ""
        last_epoch = -1
        pos = top = 0
        rec: bool | None = None
        for m in msgs:
            cls = type(m)
            if cls is not last_cls or m.epoch != last_epoch or m.pub != last_pub:
                if key is not None:
                    self._end_run(key, pos, top)
                if not self.stored(cls):
                    if TAG[cls] in UNSTORED_KINDS:
                        res.unstored += 1
                    else:
                        res.ignored += 1
                    key = None
                    last_cls = None
                    continue
                last_cls, last_pub, last_epoch = cls, m.pub, m.epoch
                key = (last_pub, last_epoch, TAG[cls])
                pos = accepted.get(key, 0)
                top = 0
                rec = None
                self._mark_behind(key, m)
            seq = m.seq
            if seq == pos + 1 and fast:  # the common case: the next message of its stream
                append(m)
                pos = seq
                continue
            if seq <= pos:
                res.duplicates += 1
                continue
            assert key is not None
            if seq > top:
                top = seq
            if not replay:
                if rec is None:
                    rec = self.recoverable(last_pub)
                if rec and self.shedding:
                    res.deferred += 1
                    continue
                if seq != pos + 1 and rec and self._tried.get(key) != pos:
                    res.deferred += 1
                    self._holes[key] = pos
                    self.request_replay("hole")
                    continue
            if seq != pos + 1:
                res.lost.append((key, seq - pos - 1))
            append(m)
            pos = seq
        if key is not None:
            self._end_run(key, pos, top)
        res.accepted = len(buf) - before
        if not replay and len(buf) > self.max_buffer:
            res.shed = self.shed()
        return res

    def _end_run(self, key: StreamKey, pos: int, top: int) -> None:
        self.accepted[key] = pos
        high = max(pos, top)
        if high > self.seen.get(key, 0):
            self.seen[key] = high

    def _mark_behind(self, key: StreamKey, m: Message) -> None:
        if key not in self._behind_since and m.seq > self.committed.get(key, 0):
            self._behind_since[key] = m.ts_recv

    def shed(self) -> int:
        """Drop what the journal can replay; returns how many messages were dropped."""
        keep = [m for m in self.buffer if not self.recoverable(m.pub)]
        dropped = len(self.buffer) - len(keep)
        self.buffer = keep
        for key in list(self.accepted):
            if self.recoverable(key[0]):
                self.accepted[key] = self.taken.get(key, 0)
        self.shedding = True
        self.request_replay("overflow")
        return dropped

    def begin_replay(self) -> str:
        """A replay starts now: live holes seen so far are the ones it must fill."""
        reason = self.replay_reason or "request"
        self._tried = dict(self._holes)
        self._holes.clear()
        self.shedding = False
        self.replay_reason = None
        return reason

    # ---- batches -----------------------------------------------------------------------------
    @property
    def buffered(self) -> int:
        return len(self.buffer)

    def take(self, max_messages: int) -> Batch | None:
        """The next batch (oldest messages first), or None when the buffer is empty."""
        if not self.buffer:
            return None
        msgs = self.buffer[:max_messages]
        del self.buffer[:max_messages]
        builder = BatchBuilder(self.polls)
        offsets: dict[StreamKey, tuple[int, int]] = {}
        n = len(msgs)
        i = 0
        while i < n:  # runs of one stream: one mapper call, one offset each
            first = msgs[i]
            cls, pub, epoch = type(first), first.pub, first.epoch
            j = i + 1
            while j < n and type(msgs[j]) is cls and msgs[j].epoch == epoch and msgs[j].pub == pub:
                j += 1
            builder.add_run(msgs[i:j])
            last = msgs[j - 1]
            key = (pub, epoch, TAG[cls])
            offsets[key] = (last.seq, last.ts_recv)
            if last.seq > self.taken.get(key, 0):
                self.taken[key] = last.seq
            i = j
        recvs = [m.ts_recv for m in msgs]
        oldest, newest = min(recvs), max(recvs)
        rows = dict(builder.rows)
        return Batch(
            rows=rows,
            hours=_hours(rows, oldest, newest),
            upserts=builder.upsert_groups(),
            offsets=offsets,
            messages=n,
            unchanged_polls=builder.unchanged_polls,
            oldest_recv_ns=oldest,
            newest_recv_ns=newest,
        )

    def commit(self, batch: Batch) -> None:
        """The batch is in the database."""
        for key, (seq, recv) in batch.offsets.items():
            if seq > self.committed.get(key, 0):
                self.committed[key] = seq
            if self.committed[key] >= self.seen.get(key, 0):
                self._behind_since.pop(key, None)
            elif key in self._behind_since:
                self._behind_since[key] = recv

    # ---- lag ---------------------------------------------------------------------------------
    def lag(self, now_ns: int) -> tuple[int, float]:
        """(messages seen but not yet stored, seconds the oldest of them has waited)."""
        behind = 0
        for key, seen in self.seen.items():
            done = self.committed.get(key, 0)
            if seen > done:
                behind += seen - done
        if not self._behind_since or behind == 0:
            return behind, 0.0
        return behind, max(0.0, (now_ns - min(self._behind_since.values())) / 1e9)


def waited_s(msgs: Iterable[Message], now_ns: int, cap_s: float) -> float:
    """How long the oldest of ``msgs`` has been in kxfeed (from its ``ts_recv``), 0..``cap_s``.

    A batch's age counts from there, not from when the writer saw it: time spent on the bus
    under load is then inside ``batch_ms`` instead of added to it.
    """
    oldest = min((m.ts_recv for m in msgs if m.ts_recv), default=now_ns)
    return min(max((now_ns - oldest) / 1e9, 0.0), cap_s)


def _hours(rows: dict[str, list[Row]], oldest_ns: int, newest_ns: int) -> dict[str, set[int]]:
    """Hours (receive time // 1 h) each table's rows fall in; per row only when the batch
    straddles an hour boundary, which happens once an hour."""
    first, last = oldest_ns // HOUR_NS, newest_ns // HOUR_NS
    if first == last:
        return {table: {first} for table in rows}
    out: dict[str, set[int]] = {}
    for table, table_rows in rows.items():
        i = APPEND[table].recv_index
        out[table] = {r[i] // HOUR_US for r in table_rows}
    return out
