"""The one decimal parser agrees with decimal.Decimal and rejects anything inexact."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.units import (
    COUNT_PLACES,
    PRICE_PLACES,
    UnitError,
    format_count,
    format_price,
    parse_count,
    parse_fixed,
    parse_money,
    parse_price,
)

digits = st.text(alphabet="0123456789", min_size=1, max_size=12)


@given(
    whole=digits,
    frac=st.text(alphabet="0123456789", max_size=8),
    neg=st.booleans(),
    places=st.sampled_from([2, 4, 6]),
)
def test_agrees_with_decimal_on_every_plain_string(whole: str, frac: str, neg: bool, places: int) -> None:
    text = ("-" if neg else "") + whole + ("." + frac if frac else "")
    exact = Decimal(text) * (10**places)
    if exact == exact.to_integral_value():
        assert parse_fixed(text, places, signed=True) == int(exact)
    else:
        with pytest.raises(UnitError):
            parse_fixed(text, places, signed=True)


@given(st.integers(min_value=-(10**15), max_value=10**15), st.sampled_from([2, 4, 6]))
def test_format_then_parse_round_trips(value: int, places: int) -> None:
    from shared.units import format_fixed

    assert parse_fixed(format_fixed(value, places), places, signed=True) == value


@given(st.text(max_size=12))
def test_never_accepts_what_decimal_would_not_read_plainly(text: str) -> None:
    # Anything accepted must be a plain decimal with the same value as Decimal gives.
    try:
        value = parse_fixed(text, 4, signed=True)
    except UnitError:
        return
    assert Decimal(text) * 10**4 == value


def test_examples_from_the_wire() -> None:
    assert parse_price("0.4300") == 4300
    assert parse_price("0.96") == parse_price("0.9600") == parse_price("0.960") == 9600
    assert parse_count("25.00") == 2500
    assert parse_count("-25.00", signed=True) == -2500
    assert parse_money("0.010000") == 10_000
    assert format_price(4300) == "0.4300"
    assert format_count(2500) == "25.00"
    assert PRICE_PLACES == 4 and COUNT_PLACES == 2


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "-",
        ".5",
        "1.",
        "1e3",
        " 1.0",
        "1.0 ",
        "+1.0",
        "0x10",
        "NaN",
        "inf",
        "1,000",
        "٣.٣",
        "0.43001",
        "1..0",
    ],
)
def test_rejects_malformed_or_inexact(bad: str) -> None:
    with pytest.raises(UnitError):
        parse_price(bad)


def test_negative_only_when_signed() -> None:
    with pytest.raises(UnitError):
        parse_count("-1.00")
    with pytest.raises(UnitError):
        parse_fixed(123, 2)  # type: ignore[arg-type]
