"""The writer's error classes: outages are retried, refused values isolated, bugs crash.

Real driver exceptions where they can be made on the spot (SQLite), the driver's own
classes otherwise (asyncpg), and SQLAlchemy's wrapping of both."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import asyncpg.exceptions
import pytest
import sqlalchemy.exc

from services.writer.errors import classify


def make_db(tmp_path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(tmp_path / "e.db")
    conn.execute("CREATE TABLE IF NOT EXISTS t (a INTEGER PRIMARY KEY, b TEXT NOT NULL)")
    conn.execute("INSERT OR IGNORE INTO t VALUES (1, 'x')")
    conn.commit()
    return conn


def sqlite_error(tmp_path: Path, sql: str, params: tuple[object, ...] = ()) -> sqlite3.Error:
    conn = make_db(tmp_path)
    try:
        with pytest.raises(sqlite3.Error) as err:
            conn.execute(sql, params)
        return err.value
    finally:
        conn.close()


def test_sqlite_locked_database_is_an_outage(tmp_path: Path) -> None:
    make_db(tmp_path).close()
    holder = sqlite3.connect(tmp_path / "e.db")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        other = sqlite3.connect(tmp_path / "e.db", timeout=0)
        with pytest.raises(sqlite3.OperationalError) as err:
            other.execute("INSERT INTO t VALUES (2, 'y')")
        other.close()
    finally:
        holder.rollback()
        holder.close()
    assert classify(err.value) == "transient"
    wrapped = sqlalchemy.exc.OperationalError("INSERT", (), err.value)
    assert classify(wrapped) == "transient"


@pytest.mark.parametrize(
    ("sql", "params", "kind"),
    [
        ("INSERT INTO t VALUES (1, 'dup')", (), "data"),  # unique key
        ("INSERT INTO t VALUES (3, NULL)", (), "data"),  # NOT NULL
        ("INSERT INTO t VALUES (?, ?)", (2**70, "x"), "data"),  # does not fit an int64
        ("INSERT INTO nope VALUES (1)", (), "bug"),  # SQLITE_ERROR: a statement that cannot work
        ("INSERT INTO t VALUES (?, ?)", (4,), "bug"),  # wrong number of bindings
        ("INSERT INTO t VALUES (?, ?)", (5, {"a": 1}), "bug"),  # a type no column takes
    ],
)
def test_sqlite_errors(tmp_path: Path, sql: str, params: tuple[object, ...], kind: str) -> None:
    try:
        exc: BaseException = sqlite_error(tmp_path, sql, params)
    except OverflowError as overflow:  # the int64 case raises before reaching SQLite
        exc = overflow
    assert classify(exc) == kind
    assert classify(sqlalchemy.exc.DBAPIError(sql, params, exc)) == kind  # type: ignore[arg-type]


def test_os_and_timeouts_are_outages() -> None:
    assert classify(ConnectionRefusedError(errno.ECONNREFUSED, "refused")) == "transient"
    assert classify(OSError(errno.ENOSPC, "No space left on device")) == "transient"
    assert classify(TimeoutError()) == "transient"
    assert classify(sqlalchemy.exc.TimeoutError("pool")) == "transient"


def test_postgres_connection_and_resource_errors_are_outages() -> None:
    for cls in (
        asyncpg.exceptions.ConnectionDoesNotExistError,
        asyncpg.exceptions.CannotConnectNowError,  # 57P03
        asyncpg.exceptions.AdminShutdownError,  # 57P01
        asyncpg.exceptions.TooManyConnectionsError,  # 53300
        asyncpg.exceptions.DiskFullError,  # 53100
        asyncpg.exceptions.SerializationError,  # 40001
        asyncpg.exceptions.DeadlockDetectedError,  # 40P01
        asyncpg.exceptions.LockNotAvailableError,  # 55P03
    ):
        assert classify(cls("x")) == "transient", cls
    closed = asyncpg.exceptions.InterfaceError("cannot call Connection.execute(): connection is closed")
    assert classify(closed) == "transient"
    # SQLAlchemy's adapter raises its own error *from* the driver's: the cause decides.
    try:
        try:
            raise asyncpg.exceptions.ConnectionDoesNotExistError("gone")
        except asyncpg.exceptions.ConnectionDoesNotExistError as inner:
            raise RuntimeError("adapted") from inner
    except RuntimeError as outer:
        assert classify(outer) == "transient"


def test_postgres_value_errors_are_data_and_misuse_is_a_bug() -> None:
    assert classify(asyncpg.exceptions.NumericValueOutOfRangeError("x")) == "data"  # 22003
    assert classify(asyncpg.exceptions.UniqueViolationError("x")) == "data"  # 23505
    assert classify(asyncpg.exceptions._base.DataError("invalid input for query argument $1")) == "data"
    assert classify(asyncpg.exceptions.UndefinedTableError("x")) == "bug"  # 42P01
    misuse = asyncpg.exceptions.InterfaceError("the server expects 3 arguments, 2 were passed")
    assert classify(misuse) == "bug"


def test_anything_else_is_a_bug() -> None:
    for exc in (TypeError("tuple indices"), KeyError("book_deltas"), AttributeError("x"), RuntimeError()):
        assert classify(exc) == "bug"
    wrapped = sqlalchemy.exc.ProgrammingError("SELECT", (), Exception("syntax"))
    assert classify(wrapped) == "bug"
