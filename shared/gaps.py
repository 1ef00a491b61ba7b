"""The record that closes a Gap: one rule for every worker that recovers gaps.

A gap is opened by a Gap with status "open" and closed by a second Gap with the same
(conn, sid, expected) and status "recovered" (see :class:`shared.messages.Gap`); consumers
pair the two by that key, so the closing record must copy it exactly.
"""

from __future__ import annotations

from shared.messages import Gap


def closing_record(gap: Gap, method: str, ts_recv: int, *, tickers: list[str] | None = None) -> Gap:
    """``gap``'s "recovered" record, closed by ``method`` at ``ts_recv`` (ns). ``tickers``
    replaces the gap's markets when the recovery covered others (None: the same ones)."""
    return Gap(
        conn=gap.conn,
        sid=gap.sid,
        expected=gap.expected,
        received=gap.received,
        tickers=gap.tickers if tickers is None else tickers,
        reason=gap.reason,
        status="recovered",
        method=method,
        detected_ms=gap.detected_ms,
        recovered_ms=ts_recv // 1_000_000,
        ts_recv=ts_recv,
    )
