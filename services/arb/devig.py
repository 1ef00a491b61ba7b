"""Sportsbook odds -> fair probabilities: implied probabilities, four de-vig methods, consensus.

A book's implied probabilities ``q`` sum to more than 1 (the overround, its margin).
Removing it:

- multiplicative: ``p = q / sum(q)`` (exact, in fractions);
- additive: ``p = q - (sum(q) - 1) / n`` (exact; fails when a longshot goes to <= 0);
- power: ``p = q ** k`` with ``k`` such that ``sum(q ** k) = 1``;
- Shin: ``p = (sqrt(z² + 4(1 - z) q² / sum(q)) - z) / (2(1 - z))`` with the insider share
  ``z`` such that ``sum(p) = 1`` (Shin 1993; Jullien & Salanié's form).

Power and Shin are solved by bisection to well below one part per million. Results are
integers in parts per million (round half to even). Probabilities are not money: the
float steps of power/Shin end in integers before they meet a price.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Literal

Method = Literal["multiplicative", "additive", "power", "shin"]
METHODS: tuple[Method, ...] = ("multiplicative", "additive", "power", "shin")
PPM = 1_000_000
_ITERATIONS = 200


class OddsError(ValueError):
    """Odds that are not a price (American 0 or between -100 and 100, decimal <= 1)."""


def implied_american(odds: int) -> Fraction:
    """American odds -> implied probability: +150 -> 100/250, -200 -> 200/300."""
    if odds >= 100:
        return Fraction(100, odds + 100)
    if odds <= -100:
        return Fraction(-odds, -odds + 100)
    raise OddsError(f"American odds must be >= +100 or <= -100, got {odds}")


def implied_decimal(odds: Fraction) -> Fraction:
    """Decimal odds (stake included) -> implied probability: 2.5 -> 0.4."""
    if odds <= 1:
        raise OddsError(f"decimal odds must be > 1, got {odds}")
    return 1 / odds


def to_ppm(p: Fraction | float) -> int:
    return round(p * PPM)


def multiplicative(q: Sequence[Fraction]) -> list[Fraction]:
    total = sum(q, Fraction(0))
    return [x / total for x in q]


def additive(q: Sequence[Fraction]) -> list[Fraction] | None:
    share = (sum(q, Fraction(0)) - 1) / len(q)
    out = [x - share for x in q]
    return out if all(x > 0 for x in out) else None


def power(q: Sequence[Fraction]) -> list[float]:
    qf = [float(x) for x in q]

    def excess(k: float) -> float:
        return sum(x**k for x in qf) - 1.0

    # sum(q ** k) falls from n at k = 0 towards 0: one root, bracketed by doubling.
    lo, hi = 0.0, 2.0
    while excess(hi) > 0:
        lo, hi = hi, hi * 2
        if hi > 1e6:
            raise OddsError("power de-vig did not converge")
    for _ in range(_ITERATIONS):
        mid = (lo + hi) / 2
        if excess(mid) > 0:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-15:
            break
    k = (lo + hi) / 2
    return [x**k for x in qf]


def shin(q: Sequence[Fraction]) -> list[float]:
    total = float(sum(q, Fraction(0)))
    qf = [float(x) for x in q]
    if total <= 1.0:
        # No margin to explain: the insider share is 0 and Shin reduces to normalising.
        return [x / total for x in qf]

    def probs(z: float) -> list[float]:
        return [(math.sqrt(z * z + 4 * (1 - z) * x * x / total) - z) / (2 * (1 - z)) for x in qf]

    # At z = 0 the probabilities sum to sqrt(total) > 1; the sum falls as z grows.
    lo, hi = 0.0, 1.0 - 1e-12
    for _ in range(_ITERATIONS):
        mid = (lo + hi) / 2
        if sum(probs(mid)) > 1.0:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-15:
            break
    return probs((lo + hi) / 2)


def devig(q: Sequence[Fraction], method: Method) -> list[int] | None:
    """Fair probabilities in ppm, in the order of ``q``; None when the method cannot apply."""
    if len(q) < 2 or any(x <= 0 for x in q):
        return None
    out: Sequence[Fraction | float] | None
    if method == "multiplicative":
        out = multiplicative(q)
    elif method == "additive":
        out = additive(q)
    elif method == "power":
        out = power(q)
    elif method == "shin":
        out = shin(q)
    else:
        raise ValueError(f"unknown de-vig method {method!r}")
    return None if out is None else [to_ppm(p) for p in out]


def consensus(values: Sequence[int], how: Literal["median", "mean"] = "median") -> int:
    """One outcome's probability across books (ppm). The median of an even count is the mean
    of the middle two, rounded down."""
    if not values:
        raise ValueError("consensus of no books")
    if how == "mean":
        return sum(values) // len(values)
    s = sorted(values)
    n = len(s)
    mid = n // 2
    return s[mid] if n % 2 else (s[mid - 1] + s[mid]) // 2
