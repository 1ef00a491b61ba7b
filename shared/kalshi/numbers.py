"""Kalshi's numbers -> exact integers that fit the bus and the database (int64), or an error.

The one parser of the wire's decimal strings (:func:`fixed`, on top of
:func:`shared.units.parse_fixed`): a value finer than its unit raises
:class:`~shared.units.UnitError`; a well-formed value outside int64 raises
:class:`RangeError` (a UnitError, counted as reason ``range``); a string longer than any
int64 could need is refused before any big-integer arithmetic. Times become Unix ms.

Parsing a decimal string is the costliest step of the hot path, and the same
strings recur endlessly (a book has a few hundred price levels), so the
parsers are memoised in small bounded dictionaries. Running totals (a ticker's volume
and open interest) are parsed, not memoised: they rarely repeat, and remembering each
one filled a cache of 200,000 entries (~26 MB) over hours, which the 30-minute soak
measured as the connector's RSS growing 41 MB.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from shared.messages import INT64_MAX, INT64_MIN
from shared.units import COUNT_PLACES, MONEY_PLACES, ONE_DOLLAR, PRICE_PLACES, UnitError, parse_fixed


class RangeError(UnitError):
    """A well-formed number that the bus and the database cannot hold (outside int64)."""


#: Longest decimal string read: int64 has 19 digits; the slack covers a sign, a point, the
#: unit's places and trailing zeros. Longer is refused before any big-int arithmetic.
_MAX_DECIMAL_LEN = 48


def fixed(text: str, places: int, *, signed: bool = False) -> int:
    """The one decimal parser of the wire: :func:`shared.units.parse_fixed`, bounded to int64."""
    if isinstance(text, str) and len(text) > _MAX_DECIMAL_LEN:
        raise RangeError(f"decimal of {len(text)} characters: {text[:24]!r}...")
    value = parse_fixed(text, places, signed=signed)
    if not INT64_MIN <= value <= INT64_MAX:
        raise RangeError(f"{text!r} is outside int64 in units of 1e-{places}")
    return value


def parse_price(text: str) -> int:
    return fixed(text, PRICE_PLACES)


def parse_count(text: str, *, signed: bool = False) -> int:
    return fixed(text, COUNT_PLACES, signed=signed)


def parse_money(text: str, *, signed: bool = True) -> int:
    return fixed(text, MONEY_PLACES, signed=signed)


#: Entries per memo: more than the distinct prices ($0.0001 steps below $1) and the sizes
#: a book shows at once; about 2 MB at most per memo.
_CACHE_LIMIT = 16_384
_prices: dict[str, int] = {}
_counts: dict[str, int] = {}
_signed: dict[str, int] = {}
_any_prices: dict[str, int] = {}


def _remember(cache: dict[str, int], text: str, value: int) -> None:
    # Bounded: a long run sees unbounded distinct strings; clearing is cheaper than an LRU.
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[text] = value


def _memoised(cache: dict[str, int], parse: Callable[[str], int], doc: str) -> Callable[[str], int]:
    # A closure, not a call through a shared helper: a hit stays one call on the hot path.
    def memoised(text: str) -> int:
        value = cache.get(text)
        if value is None:
            value = parse(text)
            _remember(cache, text, value)
        return value

    memoised.__doc__ = doc
    return memoised


def _book_price(text: str) -> int:
    value = parse_price(text)
    if not 0 < value < ONE_DOLLAR:
        raise UnitError(f"book price {text!r} outside (0, 1)")
    return value


def _signed_count(text: str) -> int:
    return parse_count(text, signed=True)


book_price = _memoised(_prices, _book_price, "A bid price strictly between $0 and $1 (memoised).")
count = _memoised(_counts, parse_count, "A non-negative count in hundredths (memoised).")
signed_count = _memoised(_signed, _signed_count, "A signed count change in hundredths (memoised).")
price = _memoised(
    _any_prices, parse_price, "Any price in $0.0001 (memoised; ticker/trade prices may be 0 or 1)."
)


def optional_price(text: str | None) -> int | None:
    """A price that may be empty ("" or absent means none, e.g. no trade yet)."""
    if not text:
        return None
    return price(text)


def seconds_to_ms(ts: int | None) -> int | None:
    return None if ts is None else ts * 1000


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MS = dt.timedelta(milliseconds=1)


def rfc3339_ms(text: str | None) -> int | None:
    """``"2026-11-03T23:41:07Z"`` -> Unix ms, exactly (no float detour); None for ""/None."""
    if not text:
        return None
    try:
        when = dt.datetime.fromisoformat(text)
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        return (when - _EPOCH) // _MS
    except (ValueError, OverflowError):
        raise UnitError(f"not an RFC3339 time: {text[:60]!r}") from None


def fee_multiplier_ppm(raw: bytes | str | None) -> int | None:
    """A JSON number (``1``, ``0.5``, ``"0.5"``) -> parts per million; None for null/absent.

    Read as a plain decimal (no exponent, no NaN/Infinity), exactly like a price: a float or a
    Decimal would accept forms whose arithmetic overflows or rounds."""
    if raw is None:
        return None
    try:
        text = raw.decode() if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        raise UnitError("fee multiplier is not text") from None
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    if text in ("", "null"):
        return None
    return fixed(text, MONEY_PLACES)
