"""A market's price ladder (``price_ranges``) as sets of allowed bid prices per side.

Kalshi describes the ladder on the YES price axis: a NO bid at ``q`` is an offer to
sell YES at ``$1 - q``, so it is on the ladder when ``$1 - q`` is. Ladders are shared:
nearly every market uses one of a handful of structures, so the sets are cached by
structure and a book only holds a reference.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from shared.messages import PriceRange
from shared.units import ONE_DOLLAR

Ladder = tuple[frozenset[int], frozenset[int]]  # (allowed YES bid prices, allowed NO bid prices)

#: One int object per price: level dicts key on these, so 5,000 books share ~100 key
#: objects instead of holding one per level (28 bytes each, and cache misses).
PRICES: list[int] = list(range(ONE_DOLLAR + 1))


class LadderError(ValueError):
    """``price_ranges`` that cannot describe a ladder (step <= 0, end < start)."""


def ladder_key(ranges: Iterable[PriceRange]) -> tuple[tuple[int, int, int], ...]:
    return tuple((r.start, r.end, r.step) for r in ranges)


@lru_cache(maxsize=256)
def _ladder(key: tuple[tuple[int, int, int], ...]) -> Ladder:
    yes: set[int] = set()
    for start, end, step in key:
        if step <= 0 or end < start:
            raise LadderError(f"bad price range start={start} end={end} step={step}")
        yes.update(range(start, end + 1, step))
    # $0 and $1 are the ends of the axis, never a resting bid.
    yes_bids = frozenset(p for p in yes if 0 < p < ONE_DOLLAR)
    no_bids = frozenset(ONE_DOLLAR - p for p in yes_bids)
    return yes_bids, no_bids


def ladder(ranges: Iterable[PriceRange]) -> Ladder | None:
    """The allowed bid prices for ``ranges``; None when no ranges are known (no tick check)."""
    key = ladder_key(ranges)
    if not key:
        return None
    return _ladder(key)
