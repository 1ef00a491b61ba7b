"""Query and path parameters: each one parsed strictly and range-checked, or a 400 naming it.

A route declares the parameters it takes (:class:`Params`); one it does not know, or one given
twice, is refused too: a misspelt ``limt=10`` must not silently return the default page.
Times are ISO 8601 (``2026-12-03T14:00:00Z``, ``+00:00``; no offset = UTC). Cursors are the
opaque strings a page's ``next_cursor`` gave: base64url of a JSON array, checked on the way
back in like any other input.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

from .errors import bad_param

#: Kalshi tickers: letters, digits, '-', '.', '_' (series, event and market tickers alike).
TICKER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MAX_TEXT = 200
MAX_CURSOR = 1024
_DIGITS = re.compile(r"^[0-9]{1,12}$")
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_CURSOR = msgspec.json.Decoder(list[int | str])


def ticker(value: str, param: str = "ticker") -> str:
    if not TICKER.match(value):
        raise bad_param(param, "not a ticker (letters, digits, '-', '.', '_'; at most 128)")
    return value


class Params:
    """The query string of one request, for a route that takes ``allowed`` parameters."""

    def __init__(self, query: Mapping[str, str] | Any, allowed: Iterable[str]) -> None:
        self._allowed = frozenset(allowed)
        self.values: dict[str, str] = {}
        for key in query:
            if key not in self._allowed:
                shown = key if len(key) <= 40 else key[:40] + "..."
                known = ", ".join(sorted(self._allowed)) or "none"
                raise bad_param(shown, f"unknown parameter (this route takes: {known})")
            values = query.getall(key) if hasattr(query, "getall") else [query[key]]
            if len(values) > 1:
                raise bad_param(key, "given more than once")
            self.values[key] = values[0]

    def _raw(self, name: str) -> str | None:
        assert name in self._allowed, name
        return self.values.get(name)

    def integer(self, name: str, default: int, lo: int, hi: int) -> int:
        raw = self._raw(name)
        if raw is None:
            return default
        if not _DIGITS.match(raw):
            raise bad_param(name, f"an integer {lo}..{hi} is expected")
        value = int(raw)
        if not lo <= value <= hi:
            raise bad_param(name, f"{value} is out of range {lo}..{hi}")
        return value

    def choice(self, name: str, options: tuple[str, ...], default: str) -> str:
        raw = self._raw(name)
        if raw is None:
            return default
        if raw not in options:
            raise bad_param(name, f"one of {', '.join(options)} is expected")
        return raw

    def text(self, name: str, max_len: int = MAX_TEXT) -> str | None:
        raw = self._raw(name)
        if raw is None:
            return None
        if not raw or len(raw) > max_len or not raw.isprintable():
            raise bad_param(name, f"1..{max_len} printable characters are expected")
        return raw

    def ticker(self, name: str) -> str | None:
        raw = self._raw(name)
        return None if raw is None else ticker(raw, name)

    def time(self, name: str) -> datetime | None:
        raw = self._raw(name)
        if raw is None:
            return None
        if len(raw) > 40:
            raise bad_param(name, "an ISO 8601 time is expected (e.g. 2026-12-03T14:00:00Z)")
        try:
            value = datetime.fromisoformat(raw)
            value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        except (ValueError, OverflowError):
            raise bad_param(name, "an ISO 8601 time is expected (e.g. 2026-12-03T14:00:00Z)") from None
        if value < _EARLIEST:
            raise bad_param(name, "times before 1970 are not stored")
        return value

    def cursor(self, name: str, shape: tuple[type, ...]) -> tuple[Any, ...] | None:
        """The keyset position a ``next_cursor`` encoded: values of the types in ``shape``."""
        raw = self._raw(name)
        if raw is None:
            return None
        refused = bad_param(name, "not a cursor this route gave (use next_cursor as it is)")
        if not raw or len(raw) > MAX_CURSOR:
            raise refused
        try:
            values = _CURSOR.decode(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        except (binascii.Error, ValueError, msgspec.DecodeError, msgspec.ValidationError):
            raise refused from None
        if len(values) != len(shape) or not all(type(v) is t for v, t in zip(values, shape, strict=True)):
            raise refused
        if any(isinstance(v, int) and not -(2**63) <= v < 2**63 for v in values):
            raise refused
        if any(isinstance(v, str) and len(v) > 256 for v in values):
            raise refused
        return tuple(values)


def encode_cursor(values: Iterable[int | str]) -> str:
    raw = msgspec.json.encode(list(values))
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def time_range(q: Params) -> tuple[datetime | None, datetime | None]:
    since, until = q.time("since"), q.time("until")
    if since is not None and until is not None and until < since:
        raise bad_param("until", "is before since")
    return since, until
