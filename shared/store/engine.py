"""Database engines: SQLite (embedded default, WAL) and PostgreSQL (asyncpg)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.config import ConfigError, DbConfig

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}


def normalize_url(url: str) -> URL:
    """The async URL for ``url`` (plain ``sqlite://``/``postgresql://`` get the async driver)."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ConfigError(f"[db] url: not a database URL: {redact(url)!r} ({exc})") from None
    driver = _DRIVERS.get(parsed.drivername)
    if driver is None:
        raise ConfigError(
            f"[db] url: unsupported database {parsed.drivername!r}; "
            "use sqlite+aiosqlite:///path or postgresql+asyncpg://user@host/db"
        )
    return parsed.set(drivername=driver)


def redact(url: str | URL) -> str:
    """The URL with any password hidden (for logs and errors)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable url>"


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(db: DbConfig) -> AsyncEngine:
    url = normalize_url(db.url)
    connect_args: dict[str, Any] = {}
    if url.drivername.startswith("sqlite"):
        path = url.database or ""
        if path and path != ":memory:" and not path.startswith("file:"):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args=connect_args)
        _sqlite_events(engine, db)
        return engine
    if db.schema and not _SCHEMA_NAME.match(db.schema):
        raise ConfigError(f"[db] schema: {db.schema!r} is not a plain lower-case identifier")
    connect_args["timeout"] = db.connect_timeout_s
    if db.schema:
        connect_args["server_settings"] = {"search_path": db.schema}
    return create_async_engine(url, connect_args=connect_args, pool_size=4, max_overflow=4)


def _sqlite_events(engine: AsyncEngine, db: DbConfig) -> None:
    sync = db.sqlite_synchronous
    busy = int(db.sqlite_busy_timeout_ms)

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transactions out of pysqlite's hands: SQLAlchemy (and the writer) say BEGIN
        # themselves, so DDL in migrations is transactional too.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={sync}")
        cur.execute(f"PRAGMA busy_timeout={busy}")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")


async def ensure_schema(engine: AsyncEngine, db: DbConfig) -> None:
    """Create the configured PostgreSQL schema (``[db] schema``) when it does not exist."""
    if engine.dialect.name != "postgresql" or not db.schema:
        return
    async with engine.begin() as conn:
        await conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{db.schema}"')
