"""Column types shared by the schema and the migrations (which must not import the schema)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def us_to_datetime(us: int) -> datetime:
    """Exact: integer microseconds since the Unix epoch -> aware UTC datetime (no float on the way)."""
    return EPOCH + timedelta(microseconds=us)


def datetime_to_us(value: datetime) -> int:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: kxfeed stores timezone-aware times only")
    return (value - EPOCH) // _US


class UtcTimestamp(TypeDecorator[datetime]):
    """A timezone-aware instant with microsecond precision.

    PostgreSQL: ``timestamp with time zone``. SQLite has no time type, so there it is
    an INTEGER of microseconds since the Unix epoch (exact, compact, sortable); both
    come back to Python as aware UTC datetimes.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | int | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return value if isinstance(value, int) else datetime_to_us(value)
        return us_to_datetime(value) if isinstance(value, int) else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, int):
            return us_to_datetime(value)
        if isinstance(value, datetime):
            return value.astimezone(UTC)
        raise TypeError(f"unexpected stored timestamp {value!r}")
