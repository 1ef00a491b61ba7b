"""Kalshi trading fees, charged the way the exchange charges them (protocol reference §7).

Fee model: ``rate x C x P x (1 - P) x fee_multiplier`` per fill, with rate 0.07 for a
taker on every quadratic fee type, and for a maker 0 (``quadratic``), 0.0175
(``quadratic_with_maker_fees``) or 0.035 (``quadratic_with_combo_maker_fees``). How
Kalshi composes ``fee_multiplier`` with the rate is unconfirmed; it scales the rate
here. ``flat`` series use a separate table Kalshi does not publish as a formula, so
they have no model (the detector skips them, counted).

Rounding, per Kalshi's fee-rounding page: each fill's trade fee is rounded up to
$0.0001; the balance change (cost + trade fee) is floored to the member's precision
($0.01, or $0.0001 for direct members) and the difference is a rounding fee; a
per-order accumulator refunds whole cents once the accumulated rounding reaches
$0.01, so an order costs what one equivalent fill would. For whole cents and whole
contracts this is the classic "round up to the next cent": 10 @ $0.50 -> $0.18.

Units: prices in $0.0001, counts in hundredths of a contract, rates and multipliers
in parts per million, money in micro-dollars. ``price x count`` is micro-dollars.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shared.units import ONE_DOLLAR

#: fee type -> (taker rate, maker rate), ppm.
RATES_PPM: dict[str, tuple[int, int]] = {
    "quadratic": (70_000, 0),
    "quadratic_with_maker_fees": (70_000, 17_500),
    "quadratic_with_combo_maker_fees": (70_000, 35_000),
}
PPM = 1_000_000
CENT = 10_000  # micro-dollars
CENTICENT = 100  # micro-dollars
#: Denominator of :func:`fee_num`: rate(ppm) x count(1e-2) x P(1e-4) x (1-P)(1e-4) x mult(ppm) -> micro.
FEE_DEN = 10**16
#: The same for one whole contract (count = 100 folded in).
FEE_DEN_CONTRACT = 10**14


class FeeError(ValueError):
    """A fee type this module has no model for."""


@dataclass(frozen=True, slots=True)
class FeeModel:
    fee_type: str
    multiplier_ppm: int
    #: Balance precision (micro-dollars): CENT or CENTICENT.
    precision: int = CENT

    @property
    def taker_ppm(self) -> int:
        return rate_ppm(self.fee_type, maker=False)

    def taker_fee(self, price: int, count: int) -> int:
        return trade_fee(price, count, self.taker_ppm, self.multiplier_ppm)

    def order(self, fills: Sequence[tuple[int, int]]) -> int:
        """Net fees of one taker order filled as ``fills`` (price, count)."""
        return order_fees(fills, self.taker_ppm, self.multiplier_ppm, self.precision)

    def per_contract_num(self, price: int) -> int:
        """One contract's unrounded taker fee in micro-dollars, times :data:`FEE_DEN_CONTRACT`."""
        return self.taker_ppm * price * (ONE_DOLLAR - price) * self.multiplier_ppm


def rate_ppm(fee_type: str, *, maker: bool) -> int:
    rates = RATES_PPM.get(fee_type)
    if rates is None:
        raise FeeError(f"no fee model for fee type {fee_type!r}")
    return rates[1] if maker else rates[0]


def fee_num(price: int, count: int, rate: int, multiplier_ppm: int) -> int:
    """The unrounded fee of ``count`` at ``price`` in micro-dollars, times :data:`FEE_DEN`."""
    return rate * count * price * (ONE_DOLLAR - price) * multiplier_ppm


def trade_fee(price: int, count: int, rate: int, multiplier_ppm: int) -> int:
    """One fill's trade fee in micro-dollars, rounded up to $0.0001."""
    num = fee_num(price, count, rate, multiplier_ppm)
    unit = FEE_DEN * CENTICENT
    return -(-num // unit) * CENTICENT


def order_fees(
    fills: Sequence[tuple[int, int]], rate: int, multiplier_ppm: int, precision: int = CENT
) -> int:
    """Net fees (trade + rounding - rebates) of one buy order filled as ``fills``, micro-dollars."""
    total = 0
    acc = 0
    for price, count in fills:
        tf = trade_fee(price, count, rate, multiplier_ppm)
        change = -(price * count) - tf
        rounding = change - (change // precision) * precision
        acc += rounding
        rebate = (acc // CENT) * CENT
        acc -= rebate
        total += tf + rounding - rebate
    return total


class FeeSchedule:
    """Each event's fee model: its series' type and multiplier, unless an ``event_fee_update``
    overrides them (a None override clears that part)."""

    def __init__(self, precision: int = CENT) -> None:
        self.precision = precision
        self._overrides: dict[str, tuple[str | None, int | None]] = {}

    def override(self, event_ticker: str, fee_type: str | None, multiplier_ppm: int | None) -> None:
        if fee_type is None and multiplier_ppm is None:
            self._overrides.pop(event_ticker, None)
        else:
            self._overrides[event_ticker] = (fee_type, multiplier_ppm)

    def overrides(self) -> dict[str, tuple[str | None, int | None]]:
        return dict(self._overrides)

    def model(self, event_ticker: str, fee_type: str, multiplier_ppm: int) -> FeeModel | None:
        """The event's model; None when its fee type has none (``flat``, unknown)."""
        ov = self._overrides.get(event_ticker)
        if ov is not None:
            fee_type = ov[0] if ov[0] is not None else fee_type
            multiplier_ppm = ov[1] if ov[1] is not None else multiplier_ppm
        # Series metadata without a fee type (a lookup that failed) is charged as plain quadratic:
        # every quadratic type has the same taker rate, and the detector only takes.
        fee_type = fee_type or "quadratic"
        if fee_type not in RATES_PPM or multiplier_ppm < 0:
            return None
        return FeeModel(fee_type, multiplier_ppm, self.precision)
