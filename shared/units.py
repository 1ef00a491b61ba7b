"""Exact fixed-point units and the one parser for Kalshi's decimal strings.

kxfeed never holds money as a float. Internally:

- prices are integers in units of $0.0001 (``"0.4300"`` -> 4300, ``$1`` = 10_000);
- contract counts are integers in hundredths (``"25.00"`` -> 2500);
- money amounts (fees, P&L) are integers in micro-dollars (``"0.010000"`` -> 10_000).

A wire value finer than its unit is rejected, never rounded: a silently rounded
price is a wrong book.
"""

from __future__ import annotations

PRICE_PLACES = 4
COUNT_PLACES = 2
MONEY_PLACES = 6

PRICE_SCALE = 10**PRICE_PLACES
COUNT_SCALE = 10**COUNT_PLACES
MONEY_SCALE = 10**MONEY_PLACES

#: One dollar, in price units: best YES ask = ONE_DOLLAR - best NO bid.
ONE_DOLLAR = PRICE_SCALE

_DIGITS = frozenset("0123456789")


class UnitError(ValueError):
    """A wire decimal that is malformed or finer than its unit."""


def parse_fixed(text: str, places: int, *, signed: bool = False) -> int:
    """Parse a plain decimal string into an integer count of ``10**-places``.

    Accepts ``D+`` or ``D+.D+`` (with a leading ``-`` when ``signed``). Digits past
    ``places`` must be zeros; anything else (exponents, spaces, ``+``, ``.5``,
    ``1.``, non-ASCII digits, NaN) raises :class:`UnitError`.
    """
    if not isinstance(text, str):
        raise UnitError(f"expected a decimal string, got {type(text).__name__}")
    body = text
    negative = False
    if body[:1] == "-":
        if not signed:
            raise UnitError(f"negative value not allowed: {text!r}")
        negative = True
        body = body[1:]
    whole, dot, frac = body.partition(".")
    if not whole or not _DIGITS.issuperset(whole) or (dot and (not frac or not _DIGITS.issuperset(frac))):
        raise UnitError(f"not a plain decimal: {text!r}")
    if len(frac) > places:
        extra = frac[places:]
        if extra.strip("0"):
            raise UnitError(f"{text!r} is finer than 1e-{places}")
        frac = frac[:places]
    value = int(whole) * 10**places + (int(frac) * 10 ** (places - len(frac)) if frac else 0)
    return -value if negative else value


def parse_price(text: str) -> int:
    """``"0.4300"`` / ``"0.43"`` -> 4300 (units of $0.0001)."""
    return parse_fixed(text, PRICE_PLACES)


def parse_count(text: str, *, signed: bool = False) -> int:
    """``"25.00"`` -> 2500 (hundredths of a contract); ``signed`` for deltas."""
    return parse_fixed(text, COUNT_PLACES, signed=signed)


def parse_money(text: str, *, signed: bool = True) -> int:
    """``"0.010000"`` -> 10_000 (micro-dollars)."""
    return parse_fixed(text, MONEY_PLACES, signed=signed)


def format_fixed(value: int, places: int) -> str:
    """Inverse of :func:`parse_fixed`: always exactly ``places`` decimals."""
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), 10**places)
    return f"{sign}{whole}.{frac:0{places}d}"


def format_price(value: int) -> str:
    return format_fixed(value, PRICE_PLACES)


def format_count(value: int) -> str:
    return format_fixed(value, COUNT_PLACES)


def format_money(value: int) -> str:
    return format_fixed(value, MONEY_PLACES)
