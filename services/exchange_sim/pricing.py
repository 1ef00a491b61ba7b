"""Price grid arithmetic (price level structures) and Kalshi's taker fee, in $0.0001 units."""

from __future__ import annotations

from shared.units import ONE_DOLLAR

Ranges = tuple[tuple[int, int, int], ...]


def tick_at(ranges: Ranges, price: int) -> int:
    """The grid step at ``price`` (a band's end belongs to the next band)."""
    for start, end, step in ranges:
        if start <= price < end:
            return step
    return ranges[-1][2]


def snap_down(ranges: Ranges, price: int) -> int:
    """The largest grid price <= ``price`` (0, never a valid price, below the grid)."""
    if price < ranges[0][0]:
        return 0
    for start, end, step in ranges:
        if start <= price < end:
            return start + (price - start) // step * step
    return ranges[-1][1]


def on_grid(ranges: Ranges, price: int) -> bool:
    if not 0 < price < ONE_DOLLAR:
        return False
    return any(start <= price <= end and (price - start) % step == 0 for start, end, step in ranges)


def min_price(ranges: Ranges) -> int:
    return ranges[0][2]


def max_price(ranges: Ranges) -> int:
    return ONE_DOLLAR - ranges[-1][2]


def taker_fee(price: int, count: int = 100) -> int:
    """Kalshi's taker fee for ``count`` hundredths of a contract at ``price``, rounded up to $0.0001.

    fee = 0.07 x C x P x (1 - P); in $0.0001 units that is 7·C·P·(1e4-P) / (100 · 1e6).
    """
    num = 7 * count * price * (ONE_DOLLAR - price)
    return -(-num // 100_000_000)
