"""What every row mapper shares: the row type, hours, JSON text, message times in microseconds
(pure; :mod:`.rows` and :mod:`.account_rows` both build on it)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Protocol

import msgspec

from shared.messages import Message

Row = tuple[Any, ...]

HOUR_NS = 3_600_000_000_000
HOUR_US = 3_600_000_000

_json = msgspec.json.Encoder()


class RowSink(Protocol):
    """What a mapper of append rows only needs of :class:`services.writer.rows.BatchBuilder`."""

    rows: defaultdict[str, list[Row]]


def json_text(value: Any) -> str:
    return _json.encode(value).decode()


def times_us(m: Message) -> tuple[int, int]:
    """(ts, recv) in microseconds: ts is the exchange time, or the receive time without one."""
    recv = m.ts_recv // 1000
    return (m.ts_exch * 1000 if m.ts_exch is not None else recv), recv


def opt_us(ms: int | None) -> int | None:
    return None if ms is None else ms * 1000
