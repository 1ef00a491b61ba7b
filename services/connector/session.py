"""One WebSocket connection's pure core: decode frames, check sequence, recover, convert.

:meth:`Session.frames` takes a batch of raw frames and appends bus messages to
``out``; commands to send accumulate in ``table.cmds``. Nothing here touches a
socket, reads a clock or writes a metric: ``now`` (monotonic s) and ``ts_recv`` (wall ns)
come in; the shell times each batch (``kxfeed_ws_decode_seconds``), exports ``counts``
(shared with the session's table, frame faults and resync) and observes the message and
send ages (ms) left in ``ages_ms`` / ``send_ages_ms``, which it empties.

Book sequencing (duplicates, gaps, get_snapshot recovery matched by the snapshots' ``id``,
the resync timeout's resubscribe) is described in :mod:`.sequencing`. An ``ok`` or error
whose seq is the sid's last + 1 takes that number; one repeating the last takes none.
Terminal errors (10, 25) replace the subscription; retired (6, 16, 17) and unknown codes are
counted and logged once, never terminal. Error 26 (a subscription's market cap) splits the
refused subscription in two (:meth:`SubscriptionTable.split`).
That bookkeeping, everything off the in-order delta's fast path, is
:class:`~services.connector.sequencing.BookResync`, an object the session owns and calls.

To check "negative level" the session keeps each book's level sizes: a dict per
side, which also makes the delta path independent of anyone downstream.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shared.kalshi import parse
from shared.kalshi.ws import (
    FRAME_DECODER,
    TYPE_NAMES,
    Error,
    EventFeeUpdateFrame,
    EventLifecycleFrame,
    FillFrame,
    MarketLifecycleFrame,
    MarketPositionFrame,
    MultivariateLifecycleFrame,
    Ok,
    OrderbookDelta,
    OrderbookSnapshot,
    Subscribed,
    TickerFrame,
    TradeFrame,
    Unsubscribed,
    error_class,
)
from shared.kalshi.ws_private import COMMUNICATIONS, OrderGroupFrame, UserOrderFrame
from shared.log import BurstLog, get_logger
from shared.messages import (
    DECODE_ERRORS,
    INT64_MAX,
    EventLifecycle,
    Gap,
    MarketLifecycle,
    Message,
)
from shared.units import UnitError

from .badframes import FrameFaults
from .counts import Counts
from .sequencing import VALID, BookResync, MiniBook
from .streams import StreamSeq
from .subscriptions import BOOK, LIFECYCLE, Pending, SubscriptionTable
from .validity import Recovery

_log = get_logger("connector.session")
#: Frames with a per-sid seq besides the book's (Kalshi's December spec), checked by StreamSeq.
_SEQUENCED = frozenset(
    {TradeFrame, MarketLifecycleFrame, MultivariateLifecycleFrame, EventLifecycleFrame, EventFeeUpdateFrame}
    | {OrderGroupFrame, *COMMUNICATIONS}
)
#: A gap on these may have hidden a market's creation or settlement: the market set is re-discovered.
_REDISCOVER = frozenset({LIFECYCLE, "multivariate_market_lifecycle"})


class Session:
    def __init__(
        self,
        conn: int,
        *,
        recovery: Recovery,
        max_markets: int,
        resync_timeout_s: float = 5.0,
        initial_timeout_s: float = 10.0,
        command_timeout_s: float = 10.0,
        use_yes_price: bool = False,
        lifecycle: bool = True,
        private: tuple[str, ...] = (),
        unknown_types: set[str] | None = None,
    ) -> None:
        self.conn = conn
        self.recovery = recovery
        #: Every counter of this connection (the worker's Recovery counts its gaps itself).
        self.counts = Counts()
        #: Receive time minus the exchange's ts_ms / sending_ts_ms, per frame, until the shell
        #: observes them (kxfeed_ws_message_age_seconds / kxfeed_ws_send_age_seconds).
        self.ages_ms: list[int] = []
        self.send_ages_ms: list[int] = []
        self.table = SubscriptionTable(
            max_markets=max_markets,
            use_yes_price=use_yes_price,
            lifecycle=lifecycle,
            private=private,
            counts=self.counts,
        )
        self.resync_timeout_s = resync_timeout_s
        self.initial_timeout_s = initial_timeout_s
        self.command_timeout_s = command_timeout_s
        self.yes_price = use_yes_price
        self.books: dict[str, MiniBook] = {}
        self.out: list[Message] = []
        #: Lifecycle news for the worker (market set upkeep).
        self.lifecycle: list[MarketLifecycle | EventLifecycle] = []
        #: Why this session must end ("" while healthy).
        self.broken = ""
        #: Markets Kalshi says do not exist (error 16): the worker drops them from its set.
        self.rejected: list[str] = []
        #: A lifecycle seq jumped: the worker should re-discover the market set.
        #: Lifecycle-channel gaps opened, for the worker to reconcile over REST.
        self.lifecycle_gaps: list[Gap] = []
        self.frames_total = 0
        self.faults = FrameFaults(unknown_types if unknown_types is not None else set(), self.counts)
        self._burst = BurstLog(_log)
        self.streams = StreamSeq(conn=conn, out=self.out, counts=self.counts, burst=self._burst)
        self.resync = BookResync(
            conn=conn,
            recovery=recovery,
            table=self.table,
            books=self.books,
            out=self.out,
            faults=self.faults,
            burst=self._burst,
            resync_timeout_s=resync_timeout_s,
            yes_price=use_yes_price,
            counts=self.counts,
            send_ages_ms=self.send_ages_ms,
        )

    # ---- driving ---------------------------------------------------------------------------
    def start(self, markets: Iterable[str], now: float) -> None:
        ms = sorted(set(markets))
        for t in ms:
            self.books[t] = MiniBook()
        self.table.start(ms, now)

    def take(self) -> list[Message]:
        # Emptied in place: the resync object appends to this same list.
        out = self.out.copy()
        self.out.clear()
        return out

    def frames(self, raws: list[bytes], ts_recv: int, now: float) -> None:
        """Handle a batch of raw frames in arrival order."""
        resync = self.resync
        conn = self.conn
        yes_price = self.yes_price
        books = self.books
        by_sid = self.table.by_sid
        out = self.out
        decode = FRAME_DECODER.decode
        to_delta = parse.delta
        now_ms = ts_recv // 1_000_000
        age = self.ages_ms.append
        send_age = self.send_ages_ms.append
        emit = out.append
        valid, int64_max = VALID, INT64_MAX  # locals: read for every delta
        counts: dict[type, int] = {}
        deltas = 0  # counted apart from the dict: most frames are deltas
        for raw in raws:
            try:
                f: Any = decode(raw)
            except DECODE_ERRORS as exc:
                env = self.faults.undecodable(raw, exc)
                if env is not None:
                    resync.bad_frame(env, now, ts_recv)
                continue
            t = type(f)
            if t is OrderbookDelta:
                deltas += 1
                sub = by_sid.get(f.sid)
                if sub is None:
                    resync.stray(f.sid)
                    continue
                seq = f.seq
                last = sub.last_seq
                if last is not None and seq != last + 1 and not resync.seq_slow(sub, last, seq, now, ts_recv):
                    continue
                sub.last_seq = seq
                m = f.msg
                if m.ts_ms is not None:
                    age(now_ms - m.ts_ms)
                if f.sending_ts_ms is not None:
                    send_age(now_ms - f.sending_ts_ms)
                book = books.get(m.market_ticker)
                if book is None or book.state != valid or m.market_ticker not in sub.markets:
                    resync.delta_slow(f, sub, book, now, ts_recv)
                    continue
                try:
                    d = to_delta(f, conn, ts_recv, yes_price=yes_price)
                except UnitError as exc:
                    self.faults.unusable(raw, exc)
                    resync.market_gap(sub, m.market_ticker, "bad_delta", seq, now, ts_recv)
                    continue
                levels = book.yes if d.side == "yes" else book.no
                new = levels.get(d.price, 0) + d.delta
                if new < 0 or new > int64_max:
                    resync.level_break(raw, sub, m.market_ticker, new, seq, now, ts_recv)
                    continue
                if new:
                    levels[d.price] = new
                else:
                    levels.pop(d.price, None)
                emit(d)
            else:
                counts[t] = counts.get(t, 0) + 1
                if t is OrderbookSnapshot:
                    resync.snapshot(f, raw, now, ts_recv)
                else:
                    self._other(f, raw, now, ts_recv)
        if deltas:
            counts[OrderbookDelta] = deltas
        add = self.counts.add
        for t, n in counts.items():
            add("messages", TYPE_NAMES[t], n)
        self.frames_total += len(raws)

    # ---- everything else -------------------------------------------------------------------
    def _other(self, f: Any, raw: bytes, now: float, ts_recv: int) -> None:
        t = type(f)
        if t in _SEQUENCED:
            self._stream_seq(f, ts_recv)  # before the parse: an unusable frame still took its seq
        try:
            if t is TickerFrame:
                msg: Any = parse.ticker(f, ts_recv)
            elif t is TradeFrame:
                msg = parse.trade(f, ts_recv)
            elif t is MarketLifecycleFrame or t is MultivariateLifecycleFrame:
                msg = parse.lifecycle(f, ts_recv)
                self.lifecycle.append(msg)
            elif t is EventLifecycleFrame:
                msg = parse.event_lifecycle(f, ts_recv)
                self.lifecycle.append(msg)
            elif t is EventFeeUpdateFrame:
                msg = parse.fee_update(f, ts_recv)
            elif t is FillFrame:
                msg = parse.fill(f, ts_recv)
            elif t is MarketPositionFrame:
                msg = parse.market_position(f, ts_recv)
            elif t is UserOrderFrame:
                msg = parse.user_order(f, ts_recv)
            elif t is OrderGroupFrame:
                msg = parse.order_group(f, ts_recv)
            else:
                self._reply(f, now, ts_recv)
                return
        except UnitError as exc:
            self.faults.unusable(raw, exc)
            return
        ts = msg.ts_exch
        if ts is not None and t is not MarketLifecycleFrame:
            self.ages_ms.append(ts_recv // 1_000_000 - ts)
        self.out.append(msg)

    def _stream_seq(self, f: Any, ts_recv: int) -> None:
        """A sequenced channel other than the book: checked, never dropped (see .streams)."""
        sub = self.table.by_sid.get(f.sid)
        if sub is None or sub.channel == BOOK:
            return
        gap = self.streams.check(sub, f.seq, ts_recv)
        if gap is not None and sub.channel in _REDISCOVER:
            self.lifecycle_gaps.append(gap)

    def _reply(self, f: Any, now: float, ts_recv: int) -> None:
        t = type(f)
        if t is Subscribed:
            got = self.table.on_subscribed(f.id, f.msg.channel, f.msg.sid)
            if got is not None and got[0].channel == BOOK:
                # A fresh sid starts with one snapshot per market; until then its markets wait.
                self.resync.await_snapshots(got[0], sorted(got[1]), now, self.initial_timeout_s, mark=False)
        elif t is Unsubscribed:
            self.table.pop(f.id)
        elif t is Ok:
            self.resync.reply_seq(f.sid, f.seq, ok=True)
            p = self.table.pop(f.id)
            if p is not None and p.kind == "add":
                for sub in p.subs:
                    if sub.channel == BOOK:
                        self.resync.await_snapshots(
                            sub, list(p.markets), now, self.initial_timeout_s, mark=False
                        )
        elif t is Error:
            self._error(f, now, ts_recv)
        else:  # a recognised frame type this session has no use for
            self.counts.add("discarded", TYPE_NAMES[t])

    def _error(self, f: Error, now: float, ts_recv: int) -> None:
        """By Kalshi's current table: 10 and 25 end the subscription (resubscribe now); a refused
        command is handled by its kind; retired (6, 16, 17) and unknown codes are counted and
        logged once, and never end anything by themselves."""
        code = f.msg.code
        kind = error_class(code)
        # A label per code Kalshi defines; a hostile stream of codes cannot grow the label set.
        self.counts.add("command_errors", str(code) if kind != "unknown" else "unknown")
        p = self.table.pop(f.id) if f.id else None
        sid = f.sid if f.sid is not None else f.msg.sid
        ctx: dict[str, Any] = {
            "code": code,
            "error": f.msg.msg[:200],
            "id": f.id,
            "ticker": f.msg.market_ticker,
            "sid": sid,
        }
        if kind in ("retired", "unknown"):
            self.faults.odd_code(code, kind, ctx)
        self.resync.reply_seq(f.sid, f.seq, ok=False)
        if p is not None:
            self._command_failed(p, f, now, ts_recv)
            self._burst.event(f"err:{p.kind}:{kind}", "command refused", kind=p.kind, **ctx)
            return
        del ctx["sid"]
        if kind == "terminal":
            subs = [self.table.by_sid[sid]] if sid in self.table.by_sid else []
            if sid is None:
                subs = self.table.live_subs()  # a terminal error naming no sid: trust none
            self._burst.event(f"terminal:{code}", "subscription failed: subscribing again", sid=sid, **ctx)
            for sub in subs:
                self.resync.replace(sub, f"error_{code}", now, ts_recv)
        else:
            self._burst.event(f"err:{kind}", "error from Kalshi", sid=sid, **ctx)

    def _command_failed(self, p: Pending, f: Error, now: float, ts_recv: int) -> None:
        code, ticker = f.msg.code, f.msg.market_ticker
        if p.kind == "snapshot":  # its markets wait on: the resync deadline resubscribes them
            self.resync.requests.refused(f.id)
        elif code == 16 and ticker and p.kind in ("subscribe", "add"):
            self.rejected.append(ticker)
            self.table.remove([ticker], now)
            self.books.pop(ticker, None)
            if p.kind == "subscribe":
                self.table.retry(p, now)
        elif code == 26 and p.kind in ("subscribe", "add") and p.markets:
            gave_up = self.table.split(p, now)
            # Not subscribed on this connection (the next one tries again): stale until then.
            self.recovery.invalidate(gave_up, "subscription_refused", self.conn, 0, 0, ts_recv, self.out)
            for t in gave_up:
                self.books.pop(t, None)
        elif p.kind == "subscribe":
            self.broken = f"subscribe_error_{code}"
        elif p.kind == "add":
            for sub in p.subs:
                if sub.sid in self.table.by_sid:
                    self.resync.replace(sub, f"add_error_{code}", now, 0)

    # ---- timers and the end ----------------------------------------------------------------
    def tick(self, now: float, ts_recv: int) -> None:
        """Escalate recoveries past their deadline; notice commands that never got a reply."""
        for sub in self.table.live_subs():
            if sub.deadline is not None and now > sub.deadline and sub.awaiting:
                self._burst.event(
                    f"resync:{sub.sid}",
                    "recovery timed out: subscribing again",
                    sid=sub.sid,
                    waiting=len(sub.awaiting),
                )
                self.resync.replace(sub, "resync_timeout", now, ts_recv)
        if any(p.kind == "subscribe" for p in self.table.overdue(now, self.command_timeout_s)):
            self.broken = "command_timeout"
        # Kalshi need not acknowledge get_snapshot; the resync deadline covers those.
        self.table.forget_overdue(now, self.command_timeout_s)

    def close(self, ts_recv: int, reason: str = "disconnect") -> None:
        """The connection is gone: every book it kept is stale until a new snapshot. ``reason``
        "shutdown" when the connector was asked to stop (nothing was lost: it is not an alarm,
        and the gap filler's checkpoint covers the trades of the downtime at the next start)."""
        valid = sorted(t for t, b in self.books.items() if b.state == VALID)
        self.recovery.invalidate(valid, reason, self.conn, 0, 0, ts_recv, self.out)
        self.recovery.set_method(self.books, "reconnect")

    # ---- market set changes ----------------------------------------------------------------
    def add_markets(self, tickers: Iterable[str], now: float) -> list[str]:
        added = self.table.add(tickers, now)
        for t in added:
            if t not in self.books:
                self.books[t] = MiniBook()
        return added

    def remove_markets(self, tickers: Iterable[str], now: float, ts_recv: int) -> list[str]:
        removed = self.table.remove(tickers, now)
        for t in removed:
            self.books.pop(t, None)
        self.resync.requests.forget(removed)
        self.recovery.forget(removed, now, ts_recv, self.out)
        return removed

    def request_snapshots(self, tickers: Iterable[str] | None, source: str, now: float) -> list[str]:
        """get_snapshot for these markets (None = every market). Returns those requested."""
        return self.resync.request_snapshots(tickers, source, now)

    def subscribed(self) -> bool:
        """Every subscription confirmed (none pending)."""
        return not any(p.kind == "subscribe" for p in self.table.pending.values())

    def stats(self) -> dict[str, int]:
        return {
            "markets": len(self.books),
            "valid_books": sum(1 for b in self.books.values() if b.state == VALID),
            "sids": len(self.table.by_sid),
            "frames": self.frames_total,
            "pending_commands": len(self.table.pending),
        }
