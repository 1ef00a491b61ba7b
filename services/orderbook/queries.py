"""Answers to the control-socket queries, from live builder state (pure, ``now`` passed in).

Movers need the past: :func:`sample` records each book's (time, mid, cumulative
volume) every ``movers_sample_s`` when either changed, pruned to a horizon. A
mover's change is the live value minus the newest sample at or before
``now - window``, so the window is exact to within one sample interval.

Prices in answers are integers in $0.0001 (mids as ``mid_x2``, twice the mid, to
stay exact), sizes and volumes in hundredths of a contract.
"""

from __future__ import annotations

import heapq
from array import array
from bisect import bisect_right
from typing import Any

from shared.book.book import NO, YES, MarketBook
from shared.book.builder import Builder
from shared.units import ONE_DOLLAR

from .lines import Lines


class QueryError(ValueError):
    """A query that cannot be answered as asked (unknown market, bad argument)."""


def sample(builder: Builder | Lines, now: float, horizon_s: float) -> None:
    """Record mid and volume of every book whose value changed since its last sample."""
    t_ms = int(now * 1000)
    cutoff = t_ms - int(horizon_s * 1000)
    for b in builder.books.values():
        mid = b.mid_x2() if b.valid else None
        m = -1 if mid is None else mid
        ht, hm, hv = b.hist_t, b.hist_mid, b.hist_vol
        if ht is None or hm is None or hv is None:
            b.hist_t, b.hist_mid, b.hist_vol = array("q", [t_ms]), array("q", [m]), array("q", [b.volume])
            continue
        if hm[-1] == m and hv[-1] == b.volume:
            continue
        ht.append(t_ms)
        hm.append(m)
        hv.append(b.volume)
        # Keep the newest sample at or before the horizon: it is the reference for the longest window.
        k = bisect_right(ht, cutoff) - 1
        if k > 0:
            del ht[:k], hm[:k], hv[:k]


def _reference(b: MarketBook, t_ms: int) -> tuple[int, int, int] | None:
    """(sample time, mid_x2 or -1, volume) of the newest sample at or before ``t_ms``
    (the oldest one when the book is younger than that)."""
    ht, hm, hv = b.hist_t, b.hist_mid, b.hist_vol
    if ht is None or hm is None or hv is None or not ht:
        return None
    i = max(bisect_right(ht, t_ms) - 1, 0)
    return ht[i], hm[i], hv[i]


def _top(b: MarketBook) -> dict[str, Any]:
    by, bys, bn, bns = b.top()
    return {
        "yes_bid": by or None,
        "yes_bid_size": bys,
        "yes_ask": ONE_DOLLAR - bn if bn else None,
        "yes_ask_size": bns,
        "no_bid": bn or None,
        "no_ask": ONE_DOLLAR - by if by else None,
        "mid_x2": b.mid_x2(),
        "spread": b.spread(),
    }


def book(builder: Builder | Lines, ticker: str, depth: int, now: float) -> dict[str, Any]:
    b = builder.books.get(ticker)
    if b is None:
        closed = " (market closed)" if ticker in builder.closed else ""
        raise QueryError(f"no book for {ticker!r}{closed}; {len(builder.books)} books known")
    if depth < 0:
        raise QueryError("depth must be >= 0 (0 = every level)")
    n = depth or None
    return {
        "ticker": b.ticker,
        "market_id": b.market_id,
        "valid": b.valid,
        "reason": b.reason,
        "conn": b.conn,
        "sid": b.sid,
        "xseq": b.xseq,
        "hash": f"{b.hash & 0xFFFFFFFFFFFFFFFF:016x}",
        "age_s": round(now - b.updated, 3) if b.loads else None,
        "tick_checked": b.yes_ticks is not None,
        "levels": {"yes": len(b.yes), "no": len(b.no)},
        "yes": b.levels(YES, n),
        "no": b.levels(NO, n),
        "top": _top(b) if b.valid else None,
    }


def movers(
    builder: Builder | Lines, now: float, *, top: int, window_s: float, by: str = "mid"
) -> list[dict[str, Any]]:
    """Largest absolute mid change (``by="mid"``) or most volume (``by="volume"``) over the window."""
    if window_s <= 0:
        raise QueryError("window_s must be > 0")
    if by not in ("mid", "volume"):
        raise QueryError("by must be 'mid' or 'volume'")
    t_ms = int(now * 1000)
    ref_ms = t_ms - int(window_s * 1000)
    rows: list[tuple[int, str, dict[str, Any]]] = []
    for b in builder.books.values():
        ref = _reference(b, ref_ms)
        if ref is None:
            continue
        since_ms, ref_mid, ref_vol = ref
        volume = b.volume - ref_vol
        mid = b.mid_x2() if b.valid else None
        if by == "mid":
            if mid is None or ref_mid < 0 or mid == ref_mid:
                continue
            score = abs(mid - ref_mid)
        else:
            if volume <= 0:
                continue
            score = volume
        rows.append(
            (
                score,
                b.ticker,
                {
                    "ticker": b.ticker,
                    "valid": b.valid,
                    "mid_x2": mid,
                    "ref_mid_x2": ref_mid if ref_mid >= 0 else None,
                    "change_x2": mid - ref_mid if mid is not None and ref_mid >= 0 else None,
                    "volume": volume,
                    "since_s": round((t_ms - since_ms) / 1000, 3),
                },
            )
        )
    best = heapq.nlargest(top, rows, key=lambda r: (r[0], r[1]))
    return [r[2] for r in best]


def spreads(builder: Builder | Lines, *, top: int, order: str = "widest") -> list[dict[str, Any]]:
    """VALID two-sided books by YES spread (ask - bid), widest or narrowest first."""
    if order not in ("widest", "narrowest"):
        raise QueryError("order must be 'widest' or 'narrowest'")
    rows: list[tuple[int, str, MarketBook]] = []
    for b in builder.books.values():
        if b.valid and b.best_yes and b.best_no:
            rows.append((ONE_DOLLAR - b.best_no - b.best_yes, b.ticker, b))
    pick = heapq.nlargest if order == "widest" else heapq.nsmallest
    return [{"ticker": t, **_top(b)} for _, t, b in pick(top, rows, key=lambda r: (r[0], r[1]))]


def stale(builder: Builder | Lines, now: float, *, older_than_s: float, top: int) -> list[dict[str, Any]]:
    """INVALID books, and VALID books not updated for ``older_than_s``; oldest first."""
    rows: list[tuple[float, str, dict[str, Any]]] = []
    for b in builder.books.values():
        age = now - b.updated if b.loads else now - b.invalid_since
        if b.valid and age < older_than_s:
            continue
        rows.append(
            (
                age,
                b.ticker,
                {
                    "ticker": b.ticker,
                    "valid": b.valid,
                    "reason": b.reason,
                    "age_s": round(age, 3),
                    "invalid_for_s": None if b.valid else round(now - b.invalid_since, 3),
                    "snapshot_requests": b.attempts,
                },
            )
        )
    best = heapq.nlargest(top, rows, key=lambda r: (r[0], r[1]))
    return [r[2] for r in best]
