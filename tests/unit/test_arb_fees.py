"""Kalshi's fee function: the published examples, the per-fill rounding and the accumulator."""

from __future__ import annotations

import pytest

from services.arb.fees import CENTICENT, FeeModel, FeeSchedule, order_fees, rate_ppm, trade_fee

TAKER = rate_ppm("quadratic_with_maker_fees", maker=False)
MAKER = rate_ppm("quadratic_with_maker_fees", maker=True)
ONE = 1_000_000  # fee multiplier 1.0 in ppm


def dollars(text: str) -> int:
    """'$0.18' -> micro-dollars."""
    whole, _, frac = text.lstrip("$").partition(".")
    return int(whole) * 1_000_000 + int(frac.ljust(6, "0"))


def test_protocol_reference_example_10_at_50_cents_taker_is_18_cents() -> None:
    assert order_fees([(5000, 1000)], TAKER, ONE) == dollars("$0.18")


# Kalshi's fee schedule table: fee for 1 and for 100 contracts in one order, taker and maker.
SCHEDULE = [
    # price, taker x1, taker x100, maker x1, maker x100
    (500, "$0.01", "$0.34", "$0.01", "$0.09"),
    (1000, "$0.01", "$0.63", "$0.01", "$0.16"),
    (2500, "$0.02", "$1.32", "$0.01", "$0.33"),
    (5000, "$0.02", "$1.75", "$0.01", "$0.44"),
    (7500, "$0.02", "$1.32", "$0.01", "$0.33"),
    (9000, "$0.01", "$0.63", "$0.01", "$0.16"),
    (9500, "$0.01", "$0.34", "$0.01", "$0.09"),
]


@pytest.mark.parametrize(("price", "t1", "t100", "m1", "m100"), SCHEDULE)
def test_published_fee_schedule(price: int, t1: str, t100: str, m1: str, m100: str) -> None:
    assert order_fees([(price, 100)], TAKER, ONE) == dollars(t1)
    assert order_fees([(price, 10_000)], TAKER, ONE) == dollars(t100)
    assert order_fees([(price, 100)], MAKER, ONE) == dollars(m1)
    assert order_fees([(price, 10_000)], MAKER, ONE) == dollars(m100)


def test_trade_fee_is_rounded_up_to_a_centicent_per_fill() -> None:
    # 0.07 x 1 x 0.055 x 0.945 = $0.00363825 -> $0.0037
    assert trade_fee(550, 100, TAKER, ONE) == 3_700
    # exactly representable: no rounding
    assert trade_fee(5000, 1000, TAKER, ONE) == 175_000


def test_subpenny_three_one_lot_fills_cost_what_one_fill_would() -> None:
    # Each 1-lot at $0.055: trade fee $0.0037, balance change -$0.0587 floored to -$0.06, so a
    # rounding fee of $0.0013; three of them: $0.0111 + $0.0039 = $0.0150. One 3-lot fill:
    # 0.07 x 3 x 0.055 x 0.945 = $0.01091475 -> $0.0110, change -$0.1760 -> -$0.18: $0.0150.
    three = order_fees([(550, 100)] * 3, TAKER, ONE)
    assert three == dollars("$0.0150")
    assert three == order_fees([(550, 300)], TAKER, ONE)


def test_accumulator_rebates_whole_cents_across_fills() -> None:
    # Ten 1-lots at $0.50: $0.0175 each, rounding $0.0025 each; the accumulator gives back
    # $0.02, so the order costs $0.18 like one 10-lot fill (not 10 x $0.02).
    assert order_fees([(5000, 100)] * 10, TAKER, ONE) == dollars("$0.18")


def test_direct_members_are_rounded_to_the_centicent() -> None:
    assert order_fees([(5000, 1000)], TAKER, ONE, precision=CENTICENT) == dollars("$0.1750")


def test_multiplier_scales_the_fee() -> None:
    # 0.07 x 0.5 x 10 x 0.25 = $0.0875 -> $0.09
    assert order_fees([(5000, 1000)], TAKER, 500_000) == dollars("$0.09")
    assert order_fees([(5000, 1000)], TAKER, 0) == 0


def test_fractional_contracts_round_the_balance() -> None:
    # 2.5 contracts at $0.43: cost $1.075, fee 0.07 x 2.5 x 0.43 x 0.57 = $0.0428925 -> $0.0429;
    # change -$1.1179 floored to -$1.12: net fee $0.0429 + $0.0021 = $0.0450.
    assert order_fees([(4300, 250)], TAKER, ONE) == dollars("$0.0450")


def test_schedule_overrides_and_unknown_types() -> None:
    s = FeeSchedule()
    base = s.model("EV", "quadratic_with_maker_fees", ONE)
    assert base == FeeModel("quadratic_with_maker_fees", ONE)
    s.override("EV", None, 250_000)
    assert s.model("EV", "quadratic_with_maker_fees", ONE) == FeeModel("quadratic_with_maker_fees", 250_000)
    assert s.model("OTHER", "quadratic", ONE) == FeeModel("quadratic", ONE)
    s.override("EV", "flat", None)
    assert s.model("EV", "quadratic", ONE) is None, "flat has no formula: no model, no signal"
    s.override("EV", None, None)
    assert s.model("EV", "quadratic", ONE) == FeeModel("quadratic", ONE)
    assert s.model("EV", "", ONE) == FeeModel("quadratic", ONE), "unknown series fee type: plain quadratic"
    with pytest.raises(ValueError):
        rate_ppm("flat", maker=False)


def test_per_contract_numerator_matches_the_fee() -> None:
    m = FeeModel("quadratic", ONE)
    # $0.0175 per contract at $0.50, scaled by 1e14
    assert m.per_contract_num(5000) == 17_500 * 10**14
