"""Where the test PostgreSQL is, whether it answers, and a fresh database (SQLite or a
PostgreSQL schema) per test."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.config import DbConfig

PG_URL = os.environ.get("KXFEED_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


def pg_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


async def drop_schema(url: str, schema: str) -> None:
    """Drop a test's PostgreSQL schema and everything in it (``url`` is the SQLAlchemy one)."""
    import asyncpg  # here, not at the top: conftest imports this module for pg_reachable alone

    conn = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


#: ``@pytest.fixture(params=DB_PARAMS)``: a test that runs once on SQLite and once on PostgreSQL.
DB_PARAMS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def fresh_db(request: pytest.FixtureRequest, tmp_path: Path, prefix: str = "kxt") -> Iterator[DbConfig]:
    """The body of a ``db`` fixture over :data:`DB_PARAMS` (``yield from fresh_db(...)``): a
    SQLite file in ``tmp_path``, or a new PostgreSQL schema ``<prefix>_<random>`` dropped after."""
    if request.param == "sqlite":
        yield DbConfig(url=f"sqlite+aiosqlite:///{tmp_path / 'kx.db'}")
        return
    url = request.getfixturevalue("pg_url")
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    yield DbConfig(url=url, schema=schema)
    asyncio.run(drop_schema(url, schema))
