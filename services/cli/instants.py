"""Moments on the command line (``--since``, ``--until``, ``--at``): an ISO 8601 time (a
``Z`` or an offset; none means UTC), integer milliseconds since the Unix epoch, or an age
back from now (``90s``, ``15m``, ``2h``, ``3d``). Anything else, or a time outside
2000..2100, is a usage error naming the option."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_AGE = re.compile(r"^(\d{1,9})(s|m|h|d)$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_LOW = datetime(2000, 1, 1, tzinfo=UTC)
_HIGH = datetime(2100, 1, 1, tzinfo=UTC)


def instant(text: str, now: datetime, option: str = "time") -> datetime:
    """``text`` as an aware UTC datetime (ValueError saying what is accepted otherwise)."""
    s = text.strip()
    value: datetime | None = None
    if (m := _AGE.match(s.lower())) is not None:
        value = now - timedelta(seconds=int(m.group(1)) * _UNIT[m.group(2)])
    elif s.isdigit() and len(s) <= 15:
        value = datetime.fromtimestamp(0, UTC) + timedelta(milliseconds=int(s))
    else:
        try:
            parsed = datetime.fromisoformat(s.replace("z", "Z"))
        except ValueError:
            parsed = None
        if parsed is not None:
            value = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    if value is None:
        raise ValueError(
            f"{option} {text!r}: use an ISO 8601 time (2026-12-03T14:00:00Z), milliseconds since "
            "the epoch, or an age back from now (90s, 15m, 2h, 3d)"
        )
    if not _LOW <= value < _HIGH:
        raise ValueError(f"{option} {text!r}: {value.isoformat()} is outside 2000..2100")
    return value
