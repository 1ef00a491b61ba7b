"""Which failures of a database write are outages, which are bad data, and which are bugs.

The one place that decides it (the writer's start, its batch writes and its row isolation
all ask :func:`classify`):

- ``transient``: the database or the OS cannot serve us right now: a refused, reset or
  closed connection, a lock, a full or failing disk, a server shutting down, too many
  connections, a serialization failure. The writer keeps its position, retries with
  backoff and counts it; the journals cover what the buffer cannot hold.
- ``data``: the database refuses a *value* (SQLSTATE classes 22/23, an int that does not
  fit, a string it cannot encode). The batch is written row by row and the refused rows are
  counted and skipped: one hostile message cannot stall a stream.
- ``bug``: anything else (a TypeError in row building, a wrong number of bind parameters,
  SQL the database does not understand...). Retrying cannot help and would pass a bug off
  as an outage: the writer crashes with the traceback, the supervisor restarts it, and it
  replays from the journals.

Errors are looked at through SQLAlchemy's wrapper (``.orig``) and the ``__cause__`` chain, so
the driver's own exception decides whichever layer raised it.
"""

from __future__ import annotations

import sqlite3
from typing import Literal

import asyncpg
import asyncpg.exceptions
import sqlalchemy.exc

ErrorKind = Literal["transient", "data", "bug"]

#: SQLite primary result codes that mean "the database cannot serve us now" (busy, locked,
#: out of memory, read-only file, interrupted, I/O error, disk full, cannot open, lock
#: protocol). SQLITE_ERROR (1) is a bad statement: a bug.
SQLITE_TRANSIENT = frozenset({5, 6, 7, 8, 9, 10, 13, 14, 15})

#: SQLSTATE classes of outages: 08 connection, 40 transaction rollback (serialization,
#: deadlock), 53 insufficient resources (disk full, out of memory, too many connections),
#: 57 operator intervention (shutdown, cannot connect now, statement cancelled), 58 system
#: error (I/O); and 55P03 lock not available.
PG_TRANSIENT_CLASSES = frozenset({"08", "40", "53", "57", "58"})
PG_TRANSIENT_STATES = frozenset({"55P03"})

_DRIVER_TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,  # refused/reset sockets, timeouts (TimeoutError is an OSError), ENOSPC, EIO
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InternalClientError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
)


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception, what SQLAlchemy wrapped, and their causes (bounded: no cycles)."""
    out: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo and len(out) < 8:
        e = todo.pop(0)
        if e is None or any(e is seen for seen in out):
            continue
        out.append(e)
        todo += [getattr(e, "orig", None), e.__cause__]
    return out


def _one(exc: BaseException) -> ErrorKind | None:
    if isinstance(exc, OverflowError | UnicodeError | sqlite3.IntegrityError | sqlite3.DataError):
        return "data"
    # Client-side encoding refused a value (asyncpg's DataError is also a ValueError).
    if isinstance(exc, asyncpg.exceptions.DataError | asyncpg.exceptions._base.DataError):
        return "data"
    state = getattr(exc, "sqlstate", None)
    if isinstance(state, str) and len(state) == 5:
        if state[:2] in ("22", "23"):
            return "data"
        if state[:2] in PG_TRANSIENT_CLASSES or state in PG_TRANSIENT_STATES:
            return "transient"
    if isinstance(exc, sqlite3.OperationalError):
        code = getattr(exc, "sqlite_errorcode", None)
        if isinstance(code, int) and code & 0xFF in SQLITE_TRANSIENT:
            return "transient"
        return None
    if isinstance(exc, _DRIVER_TRANSIENT):
        return "transient"
    if isinstance(exc, asyncpg.exceptions.InterfaceError) and "connection is closed" in str(exc):
        return "transient"
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return "transient"
    if isinstance(exc, sqlalchemy.exc.TimeoutError):  # no pooled connection came in time
        return "transient"
    return None


def classify(exc: BaseException) -> ErrorKind:
    """``transient`` (retry), ``data`` (isolate the rows) or ``bug`` (crash)."""
    kinds = [k for k in map(_one, _chain(exc)) if k is not None]
    if "data" in kinds:
        return "data"
    if kinds:
        return "transient"
    return "bug"
