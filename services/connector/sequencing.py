"""One connection's book sequencing: per-sid sequence checks, gaps, snapshots awaited.

State of one connection only (its sids, their seqs); what outlives the connection, the
book validity told to the bus and the gaps still open, is :mod:`.validity`.

Per book subscription (sid) the last seq is tracked. seq <= last is a duplicate
(dropped, counted); seq > last + 1 is a gap: every market of the sid is INVALID,
a Gap is published, and ``get_snapshot`` is asked for in band. A jump far ahead is
such a gap too, and when the frames after it carry the sid's old sequence, they
re-anchor it there (counted) instead of being read as duplicates. A market waiting
for its snapshot drops its deltas; its snapshot makes it VALID again. A delta
for a market without a snapshot, or one that would make a level negative, is a
gap of that market alone. A subscription whose recovery fails is replaced
(resubscribed); its markets wait for the new sid's snapshots.

The in-order, VALID delta itself is applied inline in ``Session.frames`` (the hot
path); only what falls off it comes here.
"""

from __future__ import annotations

from collections.abc import Iterable

from shared.kalshi import parse
from shared.kalshi.envelope import Envelope
from shared.kalshi.numbers import RangeError
from shared.kalshi.ws import TYPE_NAMES, OrderbookDelta, OrderbookSnapshot
from shared.log import BurstLog
from shared.messages import Message
from shared.units import UnitError

from .badframes import FrameFaults
from .counts import Counts
from .snapshots import SnapshotRequests
from .subscriptions import BOOK, Sub, SubscriptionTable
from .validity import Recovery

VALID, AWAITING, NEW = 0, 1, 2
_DELTA = TYPE_NAMES[OrderbookDelta]
_SNAPSHOT = TYPE_NAMES[OrderbookSnapshot]


class MiniBook:
    __slots__ = ("no", "state", "yes")

    def __init__(self) -> None:
        self.yes: dict[int, int] = {}
        self.no: dict[int, int] = {}
        self.state = NEW


class BookResync:
    """The session's book bookkeeping off the in-order delta's fast path, as an object the
    :class:`~services.connector.session.Session` owns and calls. Its collaborators are handed
    in: the session's subscription table, books and output list (shared, mutated in place),
    the worker's :class:`Recovery`, the session's frame-fault counter, its counts and the list
    of send ages (ms) it hands the shell per batch."""

    def __init__(
        self,
        *,
        conn: int,
        recovery: Recovery,
        table: SubscriptionTable,
        books: dict[str, MiniBook],
        out: list[Message],
        faults: FrameFaults,
        burst: BurstLog,
        resync_timeout_s: float,
        yes_price: bool,
        counts: Counts,
        send_ages_ms: list[int],
    ) -> None:
        self.conn = conn
        self.recovery = recovery
        self.table = table
        self.books = books
        self.out = out
        self.faults = faults
        self._burst = burst
        self.resync_timeout_s = resync_timeout_s
        self.yes_price = yes_price
        self.counts = counts
        self.send_ages_ms = send_ages_ms
        #: get_snapshot commands whose snapshots are still due, matched by the id they carry.
        self.requests = SnapshotRequests()
        #: Whether this server's ``ok`` takes a seq (True) or repeats the last (False), once seen.
        self.ok_takes_seq: bool | None = None

    # ---- book frames off the fast path -----------------------------------------------------
    def seq_ok(self, sub: Sub, seq: int, now: float, ts_recv: int) -> bool:
        last = sub.last_seq
        if last is not None and seq != last + 1 and not self.seq_slow(sub, last, seq, now, ts_recv):
            return False
        sub.last_seq = seq
        return True

    def seq_slow(self, sub: Sub, last: int, seq: int, now: float, ts_recv: int) -> bool:
        """``seq`` is not ``last + 1``: a gap (True, recovery started), a duplicate (False), or
        the sequence resuming after a jump that was itself the odd frame (True).

        A jump far ahead (a seq of 10^18 amid seqs near 1,000) is a gap like any other, and
        recovered in band at once. The frames after it carry the sid's real sequence: while
        nothing has followed the jump in order, a seq between the one before the jump and the
        jump re-anchors the sid there instead of being read as a duplicate. (A late duplicate
        after a real gap re-anchors too; the worst that costs is a second get_snapshot.)"""
        if seq > last:
            self.sid_gap(sub, last + 1, seq, now, ts_recv)
            sub.jump_at, sub.jump_from = seq, last
            return True
        if sub.jump_at == last and seq > sub.jump_from:
            sub.jump_at = None
            self.counts.add("reanchored")
            self._burst.event(
                f"reanchor:{sub.sid}",
                "sequence resumed below a jump: the jump was the odd frame",
                sid=sub.sid,
                jump=last,
                seq=seq,
            )
            return True
        self.counts.add("duplicates")
        return False

    def delta_slow(
        self, f: OrderbookDelta, sub: Sub, book: MiniBook | None, now: float, ts_recv: int
    ) -> None:
        ticker = f.msg.market_ticker
        if book is None or ticker not in sub.markets:
            self.counts.add("discarded", "unknown_market")
        elif book.state == AWAITING:
            self.counts.add("discarded", "awaiting_snapshot")
        else:  # NEW: a delta before the market's first snapshot
            self.market_gap(sub, ticker, "no_snapshot", f.seq, now, ts_recv)

    def reply_seq(self, sid: int | None, seq: int | None, *, ok: bool) -> None:
        """An ``ok`` (to update_subscription) or an error on a sequenced sid may take the next
        number of its sequence; Kalshi leaves open whether it does. One at last + 1 advances the
        sid, so the frame after it is in order (else every get_snapshot would read as a new gap
        and recovery would loop); one repeating the last seq takes nothing. Once an ``ok`` of
        this server has repeated the last seq, a later one at last + 1 says the frame at last + 1
        was lost before it: the sid is left where it was, so the next frame opens that gap
        instead of the loss being taken for the ok's number."""
        sub = self.table.by_sid.get(sid) if sid is not None else None
        if sub is None or seq is None or sub.last_seq is None:
            return
        if ok and seq == sub.last_seq:
            self.ok_takes_seq = False
        elif seq == sub.last_seq + 1:
            if ok and self.ok_takes_seq is False:
                return
            if ok:
                self.ok_takes_seq = True
            sub.last_seq = seq

    def bad_frame(self, env: Envelope, now: float, ts_recv: int) -> None:
        """A book frame that failed its decode (already counted) still holds its place in the
        sid's sequence: a delta whose market is known is a gap of that market, as any bad delta;
        one whose market is unreadable is left unsequenced, so the next frame opens a gap of the
        whole sid. A snapshot's market stays as it was (as for a snapshot with bad units)."""
        if env.type not in (_DELTA, _SNAPSHOT) or env.sid is None or env.seq is None:
            return
        sub = self.table.by_sid.get(env.sid)
        if sub is None or sub.channel != BOOK or (env.type == _DELTA and env.ticker is None):
            return
        if not self.seq_ok(sub, env.seq, now, ts_recv) or env.type != _DELTA:
            return
        ticker = env.ticker
        book = self.books.get(ticker) if ticker is not None else None
        if ticker is not None and book is not None and book.state == VALID and ticker in sub.markets:
            self.market_gap(sub, ticker, "bad_delta", env.seq, now, ts_recv)

    def level_break(
        self, raw: bytes, sub: Sub, ticker: str, new: int, seq: int, now: float, ts_recv: int
    ) -> None:
        """A delta that would take a level below zero, or past what int64 holds: the book is
        not Kalshi's any more."""
        if new < 0:
            self.market_gap(sub, ticker, "negative_level", seq, now, ts_recv)
            return
        self.faults.unusable(raw, RangeError(f"level size {new} is outside int64"))
        self.market_gap(sub, ticker, "bad_delta", seq, now, ts_recv)

    def snapshot(self, f: OrderbookSnapshot, raw: bytes, now: float, ts_recv: int) -> None:
        sub = self.table.by_sid.get(f.sid)
        if sub is None:
            self.stray(f.sid)
            return
        if not self.seq_ok(sub, f.seq, now, ts_recv):
            return
        if f.sending_ts_ms is not None:
            self.send_ages_ms.append(ts_recv // 1_000_000 - f.sending_ts_ms)
        ticker = f.msg.market_ticker
        if ticker not in sub.markets:
            self.counts.add("discarded", "unknown_market")
            return
        if f.id and not self.requests.answered(f.id, sub.sid, ticker):
            # It names a get_snapshot this connection is not waiting on for this market (one
            # refused, or from a replaced sid): not a recovery; the sequence was still kept.
            self.counts.add("discarded", "unrequested_snapshot")
            self._burst.event("snapid", "snapshot answers no request of ours", sid=sub.sid, id=f.id)
            return
        try:
            snap = parse.snapshot(f, self.conn, ts_recv, yes_price=self.yes_price)
        except UnitError as exc:
            # The market stays as it was: waiting ones keep waiting (resync timeout), valid ones
            # are still valid (a snapshot never changes the delta stream).
            self.faults.unusable(raw, exc)
            return
        book = self.books.get(ticker)
        if book is None:
            book = self.books[ticker] = MiniBook()
        book.yes = dict(snap.yes)
        book.no = dict(snap.no)
        book.state = VALID
        if not f.id:
            self.requests.settled(sub.sid, ticker)
        sub.awaiting.discard(ticker)
        if not sub.awaiting:
            sub.deadline = None
        self.out.append(snap)
        self.recovery.restored(ticker, self.conn, sub.sid, f.seq, now, ts_recv, self.out)

    def sid_gap(self, sub: Sub, expected: int, received: int, now: float, ts_recv: int) -> None:
        # Answers to earlier requests may be among the lost frames: ask afresh for every market,
        # so no market waits on a snapshot that will never come.
        self.requests.drop_sid(sub.sid)
        tickers = sorted(sub.markets)
        self.await_snapshots(sub, tickers, now, self.resync_timeout_s)
        self.recovery.open_gap(
            conn=self.conn,
            sid=sub.sid,
            expected=expected,
            received=received,
            tickers=tickers,
            reason="seq_gap",
            method="get_snapshot",
            now=now,
            ts_recv=ts_recv,
            out=self.out,
        )
        self._burst.event(
            f"gap:{sub.sid}",
            "sequence gap: recovering in band",
            sid=sub.sid,
            expected=expected,
            received=received,
            markets=len(tickers),
        )
        self.request_snapshots(tickers, "gap", now)

    def market_gap(self, sub: Sub, ticker: str, reason: str, seq: int, now: float, ts_recv: int) -> None:
        self.await_snapshots(sub, [ticker], now, self.resync_timeout_s)
        self.recovery.open_gap(
            conn=self.conn,
            sid=sub.sid,
            expected=seq,
            received=seq,
            tickers=[ticker],
            reason=reason,
            method="get_snapshot",
            now=now,
            ts_recv=ts_recv,
            out=self.out,
        )
        self._burst.event(f"mgap:{reason}", "book break: recovering market", ticker=ticker, reason=reason)
        if self.requests.in_flight(sub.sid, ticker):
            # Its answer is still to come, later in the sid's sequence than this break, so it
            # covers it: asking again would only multiply the requests.
            return
        self.request_snapshots([ticker], "gap", now)

    def await_snapshots(
        self, sub: Sub, tickers: list[str], now: float, timeout: float, *, mark: bool = True
    ) -> None:
        """``tickers`` wait for a snapshot on ``sub`` until ``now + timeout``; ``mark`` makes their
        deltas meanwhile be dropped (after a break) rather than treated as a break (new markets)."""
        if mark:
            for t in tickers:
                book = self.books.get(t)
                if book is not None:
                    book.state = AWAITING
        sub.awaiting.update(tickers)
        if sub.deadline is None:
            sub.deadline = now + timeout

    def request_snapshots(self, tickers: Iterable[str] | None, source: str, now: float) -> list[str]:
        """get_snapshot for these markets (None = every market). Returns those requested."""
        wanted = self.table.markets() if tickers is None else tickers
        sent = self.table.snapshot(wanted, now)
        for cid, (sub, markets) in sent.items():
            self.requests.sent(cid, sub.sid, markets)
        asked = sorted(t for _, markets in sent.values() for t in markets)
        if asked:
            self.counts.add("snapshot_requests", source, len(asked))
        return asked

    def replace(self, sub: Sub, reason: str, now: float, ts_recv: int) -> None:
        """Resubscribe ``sub``; its book markets are suspect until the new sid's snapshots."""
        if sub.channel == BOOK:
            self.requests.drop_sid(sub.sid)
            tickers = sorted(sub.markets)
            if reason.startswith("error_") and ts_recv:
                self.recovery.open_gap(
                    conn=self.conn,
                    sid=sub.sid,
                    expected=(sub.last_seq or 0) + 1,
                    received=0,
                    tickers=tickers,
                    reason=reason,
                    method="resubscribe",
                    now=now,
                    ts_recv=ts_recv,
                    out=self.out,
                )
            for t in tickers:
                book = self.books.get(t)
                if book is not None:
                    book.state = AWAITING
            self.recovery.set_method(tickers, "resubscribe")
        self.table.resubscribe(sub, reason, now, dead=reason.startswith("error_"))

    def stray(self, sid: int) -> None:
        self.counts.add("discarded", "retired_sid" if sid in self.table.retired else "unknown_sid")
