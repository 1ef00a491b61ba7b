"""What the writer knows of one subscription's stored xseqs without reading the table.

Deltas below the high-water mark are common on the live stream, not only in replays: the
connector publishes a market's messages together, so a subscription's xseqs reach the writer
interleaved across markets, and a batch boundary leaves some of a stretch for the next batch.
Looking each of those up in the stored runs costs a query and a decode per batch. The writer
stored every run above the mark it read itself, so it can know them exactly instead: every
xseq in (``base``, mark] is stored unless it is in ``gaps``. Only a delta at or below ``base``
needs the table (none does when the table had nothing of the subscription: ``empty_below``).

Bounded: when the gaps would pass :data:`MAX_GAPS`, what is known is given up (``base`` moves
to the mark, the gaps are dropped) and lookups answer for what is below, as before. The writer
is the only one storing its subscriptions' deltas (the high-water mark already relies on it).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

#: Most xseqs known missing below the mark, per subscription.
MAX_GAPS = 65_536


class Known:
    __slots__ = ("base", "empty_below", "gaps")

    def __init__(self, top: int | None) -> None:
        """``top``: the high-water mark read from the table (None: nothing stored)."""
        self.empty_below = top is None
        self.base = 0 if top is None else top
        self.gaps: set[int] = set()

    def copy(self) -> Known:
        k = Known(None)
        k.base, k.empty_below, k.gaps = self.base, self.empty_below, set(self.gaps)
        return k

    def stored(self, x: int) -> bool | None:
        """Whether ``x`` (at or below the mark) is stored; None: only the table knows."""
        if x > self.base:
            return x not in self.gaps
        return False if self.empty_below else None

    def none_stored(self, xs: Sequence[int]) -> bool:
        """Whether none of ``xs`` (at or below the mark, rising) is stored, known here."""
        if not xs:
            return True
        if xs[0] > self.base:
            return self.gaps.issuperset(xs)
        return self.empty_below and self.gaps.issuperset(x for x in xs if x > self.base)

    def learn(self, xs: Sequence[int], top: int | None) -> None:
        """``xs`` (a run's: rising) were just stored; ``top``: the mark before them (None:
        nothing stored yet, then the first run sets ``base``)."""
        if not xs:
            return
        lo, hi = xs[0], xs[-1]
        if top is None:
            self.base = top = lo - 1
        if hi > top:
            missing = hi - top - (len(xs) - bisect_right(xs, top))
            if missing and len(self.gaps) + missing > MAX_GAPS:
                self.forget(hi)
                return
            if missing:
                self.gaps.update(set(range(top + 1, hi + 1)).difference(xs))
        if self.gaps:
            self.gaps.difference_update(xs)
        if not self.empty_below or lo > self.base:
            return  # below base: the table holds them, the lookups find them
        missing = self.base - lo + 1 - bisect_right(xs, self.base)
        if len(self.gaps) + missing > MAX_GAPS:
            self.forget(max(hi, top))
            return
        self.gaps.update(set(range(lo, self.base + 1)).difference(xs))
        self.base = lo - 1

    def forget(self, top: int) -> None:
        """Know nothing below ``top`` (the mark) any more: the table answers."""
        self.base, self.empty_below = top, False
        self.gaps.clear()
