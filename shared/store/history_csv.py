"""CSV made by the store: :func:`csv_chunks` has SQLite print a query's rows as CSV lines, so an
export costs one Python string per row instead of one object per column (the CSV half of
:mod:`shared.store.history`'s export support; book deltas are packed and go through Arrow)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import BigInteger, case, func, literal_column, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.store.history import _TABLES, KINDS, Kind, Query, _where
from shared.store.types import datetime_to_us


def _csv_line(kind: Kind, table: Any) -> Any:
    """One row as one CSV line, formatted by SQLite's printf: a row then costs one Python
    string instead of one object per column (most of an export's time in Python), and one
    printf beats a chain of concatenations. Strings are RFC 4180 quoted (%w doubles the
    quotes), NULL is an unquoted empty value, an empty string is \"\"."""
    fmt: list[str] = []
    args: list[Any] = []
    for c in kind.columns:
        col = table.c[c.name]
        if c.type in ("str", "levels"):
            if c.nullable:
                quoted = (
                    literal_column("'\"'")
                    .op("||")(func.replace(col, '"', '""'))
                    .op("||")(literal_column("'\"'"))
                )
                fmt.append("%s")
                args.append(func.ifnull(quoted, ""))
            else:
                fmt.append('"%w"')
                args.append(col)
        elif c.type == "bool":
            fmt.append("%s")
            args.append(case((col.is_(None), ""), (type_coerce(col, BigInteger) != 0, "true"), else_="false"))
        elif c.nullable:
            fmt.append("%s")
            args.append(func.ifnull(type_coerce(col, BigInteger), ""))
        else:
            fmt.append("%d")
            args.append(type_coerce(col, BigInteger))
    return func.printf(",".join(fmt), *args)


def csv_ready(engine: AsyncEngine, kind: str = "") -> bool:
    """Whether :func:`csv_chunks` works on this store (SQLite) for ``kind`` (not deltas:
    packed, SQL cannot print them)."""
    return engine.dialect.name == "sqlite" and kind != "deltas"


async def csv_chunks(
    engine: AsyncEngine, q: Query, *, size: int = 50_000
) -> AsyncIterator[tuple[int, bytes]]:
    """:func:`batches` as CSV text made by the store (SQLite only: :func:`csv_ready`): (rows,
    bytes) per batch, no header, :data:`KINDS` column order; NULL is an unquoted empty
    value, strings are quoted, booleans true/false, times integer microseconds."""
    if not csv_ready(engine, q.kind):
        raise ValueError("csv_chunks: SQLite only, not deltas")
    kind, table = KINDS[q.kind], _TABLES[q.kind]
    # Times compared as the integers SQLite keeps: then every parameter is a plain int or str
    # and the statement can go to the driver as compiled (no type processing per row either).
    us = {
        n: (datetime_to_us(t) if t is not None else None) for n, t in (("since", q.since), ("until", q.until))
    }
    ts = type_coerce(table.c.ts, BigInteger)
    conds = _where(Query(q.kind, q.ticker, q.series), table)
    if us["since"] is not None:
        conds.append(ts >= us["since"])
    if us["until"] is not None:
        conds.append(ts < us["until"])
    stmt = select(_csv_line(kind, table)).where(*conds).order_by(*(table.c[n] for n in kind.order))
    compiled = stmt.compile(dialect=engine.dialect)
    params = [compiled.params[k] for k in compiled.positiontup or ()]
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        async with raw.driver_connection.execute(str(compiled), params) as cur:  # type: ignore[union-attr]
            # The next batch is read (in the driver's thread) while the caller writes this one.
            ahead = asyncio.ensure_future(cur.fetchmany(size))
            try:
                while lines := await ahead:
                    ahead = asyncio.ensure_future(cur.fetchmany(size))
                    await asyncio.sleep(0)  # let it reach the driver's thread before the caller works
                    yield len(lines), ("\n".join([r[0] for r in lines]) + "\n").encode()
            finally:
                if not ahead.done():
                    ahead.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await ahead
