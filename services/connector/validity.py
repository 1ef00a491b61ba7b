"""What the bus has been told about book validity, and the gaps still open.

Across connections (the per-connection sequence checks that open gaps are :mod:`.sequencing`).

Lives across connections: a book marked INVALID before a reconnect is made
VALID again by its first snapshot on the new connection, and a gap opened on the
old connection is closed (``status="recovered"``) by the snapshots that repair it.
Pure: callers pass ``now`` (monotonic seconds) and ``ts_recv`` (ns); gaps are counted in
``counts`` and recovery times kept in ``recovery_s`` for the shell to export.
"""

from __future__ import annotations

from collections.abc import Iterable

from shared.gaps import closing_record
from shared.messages import BookState, Gap, Message

from .counts import Counts


class OpenGap:
    __slots__ = ("detected", "gap", "method", "pending")

    def __init__(self, gap: Gap, detected: float, method: str) -> None:
        self.gap = gap
        self.detected = detected
        self.method = method
        self.pending = set(gap.tickers)


class Recovery:
    def __init__(self) -> None:
        #: Markets the bus currently believes INVALID (because we said so).
        self.invalid: set[str] = set()
        self.open: list[OpenGap] = []
        self.recovered = 0
        #: ``gaps`` by reason.
        self.counts = Counts()
        #: Seconds from detection to recovery of each gap closed since the shell last took them.
        self.recovery_s: list[float] = []

    def invalidate(
        self,
        tickers: Iterable[str],
        reason: str,
        conn: int,
        sid: int,
        xseq: int,
        ts_recv: int,
        out: list[Message],
    ) -> None:
        for t in tickers:
            if t in self.invalid:
                continue  # already told; repeating it adds nothing
            self.invalid.add(t)
            out.append(
                BookState(
                    ticker=t, valid=False, reason=reason, conn=conn, sid=sid, xseq=xseq, ts_recv=ts_recv
                )
            )

    def open_gap(
        self,
        *,
        conn: int,
        sid: int,
        expected: int,
        received: int,
        tickers: list[str],
        reason: str,
        method: str,
        now: float,
        ts_recv: int,
        out: list[Message],
    ) -> None:
        """Publish a Gap (status open) and the INVALID BookStates of its markets."""
        self.counts.add("gaps", reason)
        self.invalidate(tickers, reason, conn, sid, received, ts_recv, out)
        gap = Gap(
            conn=conn,
            sid=sid,
            expected=expected,
            received=received,
            tickers=sorted(tickers),
            reason=reason,
            method=method,
            detected_ms=ts_recv // 1_000_000,
            ts_recv=ts_recv,
        )
        out.append(gap)
        if tickers:
            self.open.append(OpenGap(gap, now, method))

    def set_method(self, tickers: Iterable[str], method: str) -> None:
        """Recovery escalated (resubscribe, reconnect) for these markets."""
        hit = set(tickers)
        for g in self.open:
            if g.pending & hit:
                g.method = method

    def restored(
        self, ticker: str, conn: int, sid: int, xseq: int, now: float, ts_recv: int, out: list[Message]
    ) -> None:
        """A fresh snapshot for ``ticker`` arrived: VALID again, and close gaps it completes."""
        if ticker in self.invalid:
            self.invalid.discard(ticker)
            out.append(BookState(ticker=ticker, valid=True, conn=conn, sid=sid, xseq=xseq, ts_recv=ts_recv))
        if not self.open:
            return
        keep: list[OpenGap] = []
        for g in self.open:
            g.pending.discard(ticker)
            if g.pending:
                keep.append(g)
            else:
                self._close(g, now, ts_recv, out)
        self.open = keep

    def forget(self, tickers: Iterable[str], now: float, ts_recv: int, out: list[Message]) -> None:
        """Markets left the set: nothing will repair them, and nothing needs to."""
        gone = set(tickers)
        self.invalid -= gone
        keep: list[OpenGap] = []
        for g in self.open:
            g.pending -= gone
            if g.pending:
                keep.append(g)
            else:
                g.method = g.method + "+removed"
                self._close(g, now, ts_recv, out)
        self.open = keep

    def _close(self, g: OpenGap, now: float, ts_recv: int, out: list[Message]) -> None:
        self.recovered += 1
        self.recovery_s.append(max(0.0, now - g.detected))
        out.append(closing_record(g.gap, g.method, ts_recv))
