"""De-vig methods against worked examples computed here, independently of the module.

The module solves power and Shin by bisection in floats; the references below solve
them by Newton's method in 40-digit decimals. Answers are compared in ppm, to 1 ppm.
"""

from __future__ import annotations

from decimal import Decimal, getcontext
from fractions import Fraction

import pytest

from services.arb.devig import METHODS, OddsError, consensus, devig, implied_american, implied_decimal

getcontext().prec = 40
D = Decimal


def ppm(x: Decimal) -> int:
    return int((x * 1_000_000).to_integral_value())


def american(odds: int) -> Decimal:
    return D(100) / (odds + 100) if odds > 0 else D(-odds) / (-odds + 100)


def power_ref(q: list[Decimal]) -> list[Decimal]:
    """Newton on f(k) = sum(q^k) - 1, f'(k) = sum(q^k ln q)."""
    k = D(1)
    for _ in range(100):
        f = sum((x**k for x in q), D(0)) - 1
        df = sum((x**k * x.ln() for x in q), D(0))
        k -= f / df
    return [x**k for x in q]


def shin_ref(q: list[Decimal]) -> list[Decimal]:
    """Newton on g(z) = sum(p_i(z)) - 1 with a numeric derivative, in 40 digits."""
    total = sum(q)

    def probs(z: Decimal) -> list[Decimal]:
        return [((z * z + 4 * (1 - z) * x * x / total).sqrt() - z) / (2 * (1 - z)) for x in q]

    z = D("0.01")
    h = D("1e-20")
    for _ in range(60):
        g = sum(probs(z)) - 1
        dg = (sum(probs(z + h)) - sum(probs(z - h))) / (2 * h)
        z -= g / dg
    return probs(z)


CASES = [
    [-110, -110],
    [150, -180],
    [-400, 300],
    [250, 240, -105],  # three-way (soccer with a draw)
    [-1200, 700],
]


def test_implied_probabilities() -> None:
    assert implied_american(150) == Fraction(2, 5)
    assert implied_american(-200) == Fraction(2, 3)
    assert implied_american(100) == Fraction(1, 2)
    assert implied_decimal(Fraction(5, 2)) == Fraction(2, 5)
    for bad in (0, 50, -99):
        with pytest.raises(OddsError):
            implied_american(bad)
    with pytest.raises(OddsError):
        implied_decimal(Fraction(1))


@pytest.mark.parametrize("odds", CASES)
def test_multiplicative(odds: list[int]) -> None:
    q = [american(o) for o in odds]
    want = [ppm(x / sum(q)) for x in q]
    got = devig([implied_american(o) for o in odds], "multiplicative")
    assert got == want


def test_multiplicative_worked_example() -> None:
    # +150 / -180: q = 0.4 and 0.642857..., overround 1.042857...; 0.4 / 1.042857 = 0.383562
    assert devig([implied_american(150), implied_american(-180)], "multiplicative") == [383_562, 616_438]


@pytest.mark.parametrize("odds", CASES)
def test_additive(odds: list[int]) -> None:
    q = [american(o) for o in odds]
    margin = (sum(q, D(0)) - 1) / len(q)
    want = [ppm(x - margin) for x in q]
    assert devig([implied_american(o) for o in odds], "additive") == want


def test_additive_fails_rather_than_going_negative() -> None:
    # A 1% longshot in a book with a 10% margin split evenly: 0.01 - 0.05 < 0.
    q = [Fraction(109, 100), Fraction(1, 100)]
    assert devig(q, "additive") is None


@pytest.mark.parametrize("odds", CASES)
def test_power(odds: list[int]) -> None:
    want = [ppm(x) for x in power_ref([american(o) for o in odds])]
    got = devig([implied_american(o) for o in odds], "power")
    assert got is not None
    assert all(abs(g - w) <= 1 for g, w in zip(got, want, strict=True)), (got, want)


@pytest.mark.parametrize("odds", CASES)
def test_shin(odds: list[int]) -> None:
    want = [ppm(x) for x in shin_ref([american(o) for o in odds])]
    got = devig([implied_american(o) for o in odds], "shin")
    assert got is not None
    assert all(abs(g - w) <= 1 for g, w in zip(got, want, strict=True)), (got, want)


def test_methods_agree_on_an_even_book_and_differ_on_a_favourite_longshot_book() -> None:
    even = [implied_american(-110)] * 2
    for method in METHODS:
        assert devig(even, method) == [500_000, 500_000]
    fav = [implied_american(-1200), implied_american(700)]
    mult, add, pw, sh = (devig(fav, m) for m in METHODS)
    assert mult and add and pw and sh
    # The others take more of the margin off the longshot than proportional scaling does.
    assert max(add[1], pw[1], sh[1]) < mult[1]
    assert pw[1] < add[1]


def test_bad_input() -> None:
    assert devig([Fraction(1, 2)], "multiplicative") is None
    assert devig([Fraction(0), Fraction(1)], "shin") is None


def test_consensus() -> None:
    assert consensus([3, 1, 2]) == 2
    assert consensus([4, 1, 3, 2]) == 2  # (2 + 3) // 2
    assert consensus([500_001, 500_002]) == 500_001
    assert consensus([1, 2, 6], "mean") == 3
    with pytest.raises(ValueError):
        consensus([])
