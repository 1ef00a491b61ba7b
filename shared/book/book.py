"""One market's L2 book: YES bids and NO bids keyed by exact integer price.

Sizes are hundredths of a contract, prices $0.0001 units, NO prices on the NO axis
(best YES ask = $1 - best NO bid). ``best_yes``/``best_no`` are kept incrementally
with 0 meaning "side empty": a real bid is always > 0, so ``best_yes + best_no >=
$1`` is the crossed test with no branch for empty sides.

``hash`` is the XOR of ``level_hash`` over every non-empty level, so it is
independent of the order the levels arrived in and a delta updates it in O(1):
two runs over the same stream can be compared message by message.
"""

from __future__ import annotations

import sys
from array import array

from shared.messages import Level
from shared.units import ONE_DOLLAR

from .ticks import PRICES

YES = 0
NO = 1
#: Added to a NO price in level hashes, so a YES and a NO level at one price differ.
NO_HASH_KEY = 1 << 20


def level_hash(side: int, price: int, size: int) -> int:
    """Hash of one level. Deterministic across processes: ints hash to themselves and
    the tuple hash does not depend on PYTHONHASHSEED."""
    return hash((price + NO_HASH_KEY if side else price, size))


class MarketBook:
    """State of one market. Mutated by :class:`shared.book.builder.Builder` only."""

    __slots__ = (
        "attempts",
        "best_no",
        "best_yes",
        "conn",
        "depth_sent",
        "hash",
        "hist_mid",
        "hist_t",
        "hist_vol",
        "invalid_since",
        "loads",
        "market_id",
        "no",
        "no_ticks",
        "reason",
        "retry_at",
        "seen_xseq",
        "sid",
        "ticker",
        "tob_next",
        "tob_sent",
        "ts_exch",
        "ts_recv",
        "updated",
        "valid",
        "volume",
        "xseq",
        "yes",
        "yes_ticks",
    )

    def __init__(self, ticker: str, market_id: str = "") -> None:
        self.ticker = ticker
        self.market_id = market_id
        self.yes: dict[int, int] = {}
        self.no: dict[int, int] = {}
        self.best_yes = 0
        self.best_no = 0
        self.hash = 0
        self.valid = False
        self.reason = "no_snapshot"
        # (conn, sid, xseq) of the WS subscription this book follows; (0, 0, 0) = none yet.
        self.conn = 0
        self.sid = 0
        self.xseq = 0
        self.loads = 0  # snapshots applied: with xseq, tells depth publishing what changed
        self.yes_ticks: frozenset[int] | None = None
        self.no_ticks: frozenset[int] | None = None
        # Stamps of the last message that moved the top: they stamp the outputs. Copied rather
        # than the message kept: replacing a kept message freed a cold struct and its strings on
        # every top-moving delta, and kept 5,000 scattered messages alive between batches.
        self.ts_exch: int | None = None
        self.ts_recv = 0
        # Last time a change was seen (set by snapshots and by Builder.touch, not per delta).
        self.updated = 0.0
        self.seen_xseq = 0
        self.invalid_since = 0.0
        self.retry_at = 0.0
        self.attempts = 0
        self.tob_sent: tuple[bool, int, int, int, int] | None = None
        self.tob_next = 0.0
        self.depth_sent: int | None = None  # hash of the book its last depth message showed
        self.volume = 0
        # Sampled (time ms, mid_x2 or -1, cumulative volume) for movers; created on first sample.
        self.hist_t: array[int] | None = None
        self.hist_mid: array[int] | None = None
        self.hist_vol: array[int] | None = None

    # ---- snapshots -----------------------------------------------------------------------
    def load(self, yes: list[Level], no: list[Level]) -> str:
        """Replace the contents with a snapshot. Returns "" or the invariant it breaks."""
        self.yes = {}
        self.no = {}
        self.hash = 0
        self.best_yes = self.best_no = 0
        reason = self._fill(YES, yes, self.yes, self.yes_ticks) or self._fill(NO, no, self.no, self.no_ticks)
        if reason:
            return reason
        self.best_yes = max(self.yes) if self.yes else 0
        self.best_no = max(self.no) if self.no else 0
        if self.best_yes + self.best_no >= ONE_DOLLAR:
            return "crossed"
        return ""

    def _fill(
        self, side: int, levels: list[Level], into: dict[int, int], ticks: frozenset[int] | None
    ) -> str:
        h = self.hash
        for price, size in levels:
            if size < 0:
                return "negative_level"
            if (price not in ticks) if ticks is not None else not 0 < price < ONE_DOLLAR:
                return "off_tick"
            if size == 0:
                continue
            # A repeated price in one snapshot: the later level wins, as a dict load would.
            old = into.get(price, 0)
            if old:
                h ^= level_hash(side, price, old)
            into[PRICES[price]] = size
            h ^= level_hash(side, price, size)
        self.hash = h
        return ""

    # ---- reading -------------------------------------------------------------------------
    def levels(self, side: int, n: int | None = None) -> list[Level]:
        """Levels of one side, best (highest bid) first; all of them when ``n`` is None."""
        src = self.yes if side == YES else self.no
        prices = sorted(src, reverse=True)
        if n is not None:
            prices = prices[:n]
        return [(p, src[p]) for p in prices]

    def top(self) -> tuple[int, int, int, int]:
        """(best YES bid, its size, best NO bid, its size); 0 for an empty side."""
        by, bn = self.best_yes, self.best_no
        return by, (self.yes[by] if by else 0), bn, (self.no[bn] if bn else 0)

    def mid_x2(self) -> int | None:
        """YES bid + YES ask (twice the mid, exact), None when a side is empty."""
        if not self.best_yes or not self.best_no:
            return None
        return self.best_yes + ONE_DOLLAR - self.best_no

    def spread(self) -> int | None:
        if not self.best_yes or not self.best_no:
            return None
        return ONE_DOLLAR - self.best_no - self.best_yes

    def full_hash(self) -> int:
        """The hash recomputed from scratch (what ``hash`` must always equal)."""
        h = 0
        for side, src in ((YES, self.yes), (NO, self.no)):
            for price, size in src.items():
                h ^= level_hash(side, price, size)
        return h

    def nbytes(self) -> int:
        """Approximate memory held by this book (object, level dicts, history)."""
        total = sys.getsizeof(self) + sys.getsizeof(self.yes) + sys.getsizeof(self.no)
        for src in (self.yes, self.no):
            total += sum(sys.getsizeof(p) + sys.getsizeof(s) for p, s in src.items())
        for arr in (self.hist_t, self.hist_mid, self.hist_vol):
            if arr is not None:
                total += sys.getsizeof(arr)
        return total
