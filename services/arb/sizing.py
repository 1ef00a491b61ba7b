"""Edge and size: walking the asks after fees, the Kelly cap, complements across outcomes.

Asks are ``(price, size)`` best (cheapest) first. A level is taken whole while its
per-contract edge - fair value minus price minus the unrounded taker fee - is at
least the minimum; the asks only get dearer, so the walk stops at the first level
that fails and the edge shrinks as size grows. The exact charge of what was taken
(fees rounded per fill, one order) comes from :mod:`.fees`.

Units: prices $0.0001, sizes hundredths, money micro-dollars; a fair value in ppm is
the micro-dollars one contract is worth.
"""

from __future__ import annotations

from collections.abc import Sequence

from .fees import FEE_DEN_CONTRACT, FeeModel

Level = tuple[int, int]
PPM = 1_000_000


def walk(asks: Sequence[Level], value_micro: int, fee: FeeModel, min_edge_micro: int) -> list[Level]:
    """The ask levels worth taking for a contract worth ``value_micro``."""
    out: list[Level] = []
    floor = min_edge_micro * FEE_DEN_CONTRACT
    for price, size in asks:
        if (value_micro - price * 100) * FEE_DEN_CONTRACT - fee.per_contract_num(price) < floor:
            break
        if size > 0:
            out.append((price, size))
    return out


def take(fills: Sequence[Level], count: int) -> list[Level]:
    """The first ``count`` hundredths of ``fills``."""
    out: list[Level] = []
    left = count
    for price, size in fills:
        if left <= 0:
            break
        n = min(size, left)
        out.append((price, n))
        left -= n
    return out


def total(fills: Sequence[Level]) -> int:
    return sum(s for _, s in fills)


def cost(fills: Sequence[Level]) -> int:
    """Micro-dollars paid for the contracts (price x hundredths is micro-dollars)."""
    return sum(p * s for p, s in fills)


def charge(fills: Sequence[Level], fee: FeeModel) -> tuple[int, int]:
    """(cost, fees) of one taker order filled as ``fills``."""
    return cost(fills), fee.order(fills)


def kelly_count(value_micro: int, unit_cost_micro: int, bankroll_micro: int, fraction_ppm: int) -> int:
    """Hundredths of a contract a ``fraction`` Kelly stake buys.

    A contract costing ``c`` (fees included) that pays $1 with probability ``p`` has Kelly
    fraction ``f* = (p - c) / (1 - c)`` of the bankroll.
    """
    if unit_cost_micro <= 0 or value_micro <= unit_cost_micro or unit_cost_micro >= PPM:
        return 0
    stake = bankroll_micro * fraction_ppm * (value_micro - unit_cost_micro) // (PPM * (PPM - unit_cost_micro))
    return stake * 100 // unit_cost_micro


def largest_within(fills: Sequence[Level], fee: FeeModel, budget_micro: int) -> int:
    """The most hundredths of ``fills`` whose cost plus fees fit ``budget_micro``."""
    lo, hi = 0, total(fills)
    if sum(charge(fills, fee)) <= budget_micro:
        return hi
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if sum(charge(take(fills, mid), fee)) <= budget_micro:
            lo = mid
        else:
            hi = mid - 1
    return lo


def complement_walk(
    legs: Sequence[Sequence[Level]], payoff_micro: int, fees: Sequence[FeeModel], min_edge_micro: int
) -> tuple[int, list[list[Level]]]:
    """Bundles (one contract of every leg) worth buying for ``payoff_micro`` each.

    Returns (bundles in hundredths, fills per leg). Steps through the legs' levels together:
    each step is as large as the smallest level left, priced at every leg's current level.
    """
    n = len(legs)
    fills: list[list[Level]] = [[] for _ in range(n)]
    if n == 0 or any(not leg for leg in legs):
        return 0, fills
    idx = [0] * n
    left = [leg[0][1] for leg in legs]
    floor = min_edge_micro * FEE_DEN_CONTRACT
    bundles = 0
    while True:
        prices = [legs[i][idx[i]][0] for i in range(n)]
        edge = (payoff_micro - 100 * sum(prices)) * FEE_DEN_CONTRACT - sum(
            f.per_contract_num(p) for f, p in zip(fees, prices, strict=True)
        )
        if edge < floor:
            break
        step = min(left)
        if step > 0:
            for i in range(n):
                if fills[i] and fills[i][-1][0] == prices[i]:
                    fills[i][-1] = (prices[i], fills[i][-1][1] + step)
                else:
                    fills[i].append((prices[i], step))
            bundles += step
        done = False
        for i in range(n):
            left[i] -= step
            if left[i] <= 0:
                idx[i] += 1
                if idx[i] >= len(legs[i]):
                    done = True
                else:
                    left[i] = legs[i][idx[i]][1]
        if done:
            break
    return bundles, fills


def take_bundles(fills: Sequence[Sequence[Level]], count: int) -> list[list[Level]]:
    return [take(f, count) for f in fills]
