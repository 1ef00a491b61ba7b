"""Which trades may have been missed, and which REST trades fill the hole: the pure core.

The gap filler follows the ``trade.`` stream. :class:`TradeLedger` remembers the newest
trade time seen and a bounded set of recent trade ids. A trigger (a trade-channel Gap: its
markets; a book Gap, a disconnect or a connector restart: every market) opens a
:class:`OpenWindow` starting at the newest trade seen before it (less an overlap, since
REST times are whole seconds and two trades can share a millisecond). The window ends at the
first trade seen after the trigger (the stream is live again from there on), or, when none
comes within ``wait_s``, at the time it is fetched. It is fetched ``settle_s`` after it
ended, so every live trade up to its end has arrived and been seen. A window fetched on the
``wait_s`` timeout while the connection is not known to be back (no live trade, no valid
book since the trigger: a long outage) leaves a follow-up window from its end, which waits
for the connection (:meth:`TradeLedger.back`) however long that takes, so the trades of the
rest of the outage are fetched too. :meth:`TradeLedger.missing`
then keeps the REST trades inside the window, of its markets, whose ids were not seen.
A restarted gap filler saw nothing while it was down: :meth:`TradeLedger.resume` opens a
window for every market from its last :meth:`TradeLedger.checkpoint` on.

Pure: ``now`` is monotonic seconds, ``*_ms`` are Unix milliseconds; no sockets, no clocks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from .checkpoint import Checkpoint

#: REST's min_ts/max_ts are whole seconds: a window starts this far before the newest trade
#: seen, so a trade of the same second is asked for too (its id says if it was seen).
OVERLAP_MS = 2_000
#: After the window ended, wait this long before fetching: live trades up to its end arrive.
SETTLE_S = 1.0
#: No trade after the trigger within this long: the window ends when it is fetched.
WAIT_S = 5.0
#: Trade ids remembered (oldest forgotten first): far more than a window holds.
MAX_IDS = 200_000
#: An id is remembered this long behind the newest trade seen, and while a window not yet
#: published reaches back to it: a new window starts ``overlap_ms`` before the newest trade,
#: so an older id could only matter to a window already open. Bounds memory by time too (at
#: 200 trades/s, some 12,000 ids instead of filling ``MAX_IDS``).
ID_HORIZON_MS = 60_000
#: The reason of the window a restarted gap filler opens for its own downtime.
RESTART = "gapfill_restart"


class SeenTrade(NamedTuple):
    """What the ledger needs of a trade: a bus Trade or a REST trade, times in ms."""

    trade_id: str
    ticker: str
    ts_ms: int


@dataclass
class OpenWindow:
    """A window of possibly missed trades. ``tickers`` None = every market."""

    tickers: set[str] | None
    reason: str
    start_ms: int
    detected_ms: int
    opened_at: float
    #: The conn/sid/expected of the Gap that opened it (0s for a disconnect or a restart).
    conn: int = 0
    sid: int = 0
    expected: int = 0
    end_ms: int | None = None
    ended_at: float | None = None
    #: When the connection was seen back (a valid book) after the trigger.
    back_at: float | None = None
    #: A follow-up of a window fetched mid-outage: waits for the connection, not ``wait_s``.
    follow_up: bool = False


@dataclass(frozen=True)
class Window:
    """A window due for a REST fetch: trades with ``start_ms <= ts <= end_ms``."""

    tickers: frozenset[str] | None
    reason: str
    start_ms: int
    end_ms: int
    detected_ms: int
    #: The window was longer than ``max_window_ms`` and starts later than it should have.
    capped: bool
    conn: int = 0
    sid: int = 0
    expected: int = 0

    @property
    def rest_range_s(self) -> tuple[int, int]:
        """REST's ``min_ts``/``max_ts`` (whole seconds) covering the window, one second wider
        at the end: the spec says only "before"/"after", so a bound may be exclusive; what the
        wider range brings beyond the window is filtered out by :meth:`TradeLedger.missing`."""
        return self.start_ms // 1000, self.end_ms // 1000 + 1


@dataclass
class TradeLedger:
    max_window_ms: int
    overlap_ms: int = OVERLAP_MS
    settle_s: float = SETTLE_S
    wait_s: float = WAIT_S
    max_ids: int = MAX_IDS
    id_horizon_ms: int = ID_HORIZON_MS
    #: Before any trade is seen, a window starts here (when the gap filler started).
    started_ms: int = 0
    newest_ms: dict[str, int] = field(default_factory=dict)
    #: Trade id -> its time, insertion-ordered: oldest (roughly) first.
    ids: dict[str, int] = field(default_factory=dict)
    epochs: dict[str, int] = field(default_factory=dict)
    pending: list[OpenWindow] = field(default_factory=list)
    #: Windows :meth:`due` handed out whose trades are not published yet (:meth:`done`).
    fetching: list[Window] = field(default_factory=list)
    newest_all_ms: int = -1

    # ---- what was seen -------------------------------------------------------------------------
    def seen(self, t: SeenTrade, now: float, *, live: bool = True) -> bool:
        """A trade on the bus: ``live`` from the connector, else one we backfilled (it says
        nothing about the stream being back). False when its id was seen before."""
        for p in self.pending if live else ():
            if p.end_ms is None:  # the first live trade after the trigger: live again from here
                p.end_ms, p.ended_at = max(t.ts_ms, p.start_ms), now
                p.back_at = now if p.back_at is None else p.back_at
        if t.trade_id in self.ids:
            return False
        self.ids[t.trade_id] = t.ts_ms
        if t.ts_ms > self.newest_ms.get(t.ticker, -1):
            self.newest_ms[t.ticker] = t.ts_ms
        self.newest_all_ms = max(self.newest_all_ms, t.ts_ms)
        self._forget()
        return True

    def _forget(self) -> None:
        if len(self.ids) > self.max_ids:
            del self.ids[next(iter(self.ids))]
        if not self.ids or self.ids[next(iter(self.ids))] >= self.newest_all_ms - self.id_horizon_ms:
            return  # nothing past the horizon (an open window only moves it further back)
        horizon = min(
            [self.newest_all_ms - self.id_horizon_ms]
            + [p.start_ms for p in self.pending]
            + [w.start_ms for w in self.fetching]
        )
        while self.ids:
            oldest = next(iter(self.ids))
            if self.ids[oldest] >= horizon:
                return
            del self.ids[oldest]

    def back(self, now: float) -> None:
        """The connection is back (a valid book from the connector). Not an end: the trade
        subscription may come a little later; a window with no live trade ``wait_s`` after
        this ends when it is fetched."""
        for p in self.pending:
            if p.end_ms is None and p.back_at is None:
                p.back_at = now

    def checkpoint(self) -> Checkpoint:
        """What a restarted gap filler needs (see :mod:`.checkpoint`)."""
        starts = [p.start_ms for p in self.pending] + [w.start_ms for w in self.fetching]
        newest = self.newest_all_ms if self.newest_all_ms >= 0 else self.started_ms
        return Checkpoint(max(newest, 0), max(min(starts), 0) if starts else None, dict(self.epochs))

    def resume(self, cp: Checkpoint, now_ms: int, now: float) -> None:
        """A restart of the gap filler: what happened while it was down is unknown, so every
        market's trades from the checkpoint on are a window (up to the first live trade)."""
        self.epochs.update(cp.epochs)
        self.started_ms = cp.newest_ms
        start = min(cp.resume_ms, cp.newest_ms - self.overlap_ms)
        self.pending.append(OpenWindow(None, RESTART, start, now_ms, now))

    def publisher(self, pub: str, epoch: int) -> bool:
        """A connector's message: True when its epoch changed (a new process: a restart)."""
        before = self.epochs.get(pub)
        self.epochs[pub] = epoch
        return before is not None and before != epoch

    # ---- triggers ------------------------------------------------------------------------------
    def trigger(
        self,
        tickers: Iterable[str] | None,
        reason: str,
        now_ms: int,
        now: float,
        *,
        conn: int = 0,
        sid: int = 0,
        expected: int = 0,
    ) -> None:
        """Trades of ``tickers`` (None: every market) may be missed from now on. A trigger
        while a window has not ended yet widens that window instead of opening another."""
        wanted = None if tickers is None else set(tickers)
        start = self._newest(wanted)
        for p in self.pending:
            if p.end_ms is None:
                if p.tickers is not None:
                    p.tickers = None if wanted is None else p.tickers | wanted
                p.start_ms = min(p.start_ms, start)
                if reason not in p.reason.split("+"):
                    p.reason = f"{p.reason}+{reason}"
                return
        self.pending.append(
            OpenWindow(wanted, reason, start, now_ms, now, conn=conn, sid=sid, expected=expected)
        )

    def _newest(self, tickers: set[str] | None) -> int:
        times = (
            self.newest_ms.values()
            if tickers is None
            else [self.newest_ms[t] for t in tickers if t in self.newest_ms]
        )
        newest = max(times, default=None)
        return (self.started_ms if newest is None else newest) - self.overlap_ms

    # ---- fetching ------------------------------------------------------------------------------
    def done(self, w: Window) -> None:
        """A window from :meth:`due` is published (or given up)."""
        self.fetching.remove(w)

    def due(self, now: float, now_ms: int) -> list[Window]:
        """Windows to fetch now, kept in :attr:`fetching` until :meth:`done` (a failed fetch is
        the caller's retry)."""
        out: list[Window] = []
        keep: list[OpenWindow] = []
        for p in self.pending:
            if p.ended_at is not None and now - p.ended_at >= self.settle_s:
                assert p.end_ms is not None
                out.append(self._window(p, p.end_ms))
            elif p.ended_at is None and now - (p.back_at or p.opened_at) >= self.wait_s:
                if p.back_at is None and p.follow_up:
                    keep.append(p)  # mid-outage already fetched once: wait for the connection
                    continue
                end = max(now_ms, p.start_ms)
                out.append(self._window(p, end))
                if p.back_at is None:  # still down as far as we know: the rest comes later
                    keep.append(
                        OpenWindow(
                            p.tickers, p.reason, end - self.overlap_ms, p.detected_ms, now,
                            conn=p.conn, follow_up=True,  # a window of its own: keyed by its start
                        )
                    )  # fmt: skip
            else:
                keep.append(p)
        self.pending = keep
        self.fetching.extend(out)
        return out

    def _window(self, p: OpenWindow, end_ms: int) -> Window:
        start = p.start_ms
        capped = end_ms - start > self.max_window_ms
        if capped:
            start = end_ms - self.max_window_ms
        tickers = None if p.tickers is None else frozenset(p.tickers)
        return Window(tickers, p.reason, start, end_ms, p.detected_ms, capped, p.conn, p.sid, p.expected)

    def missing(self, w: Window, trades: Iterable[SeenTrade]) -> list[SeenTrade]:
        """The REST trades of ``w`` not seen on the bus, oldest first (each id once)."""
        out: dict[str, SeenTrade] = {}
        for t in trades:
            if not w.start_ms <= t.ts_ms <= w.end_ms:
                continue
            if w.tickers is not None and t.ticker not in w.tickers:
                continue
            if t.trade_id in self.ids or t.trade_id in out:
                continue
            out[t.trade_id] = t
        return sorted(out.values(), key=lambda t: (t.ts_ms, t.trade_id))
