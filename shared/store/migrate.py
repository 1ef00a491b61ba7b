"""Schema migrations (Alembic), driven from code: no alembic.ini, no dependence on the CWD.

``upgrade(engine, db)`` brings the database to the newest revision this kxfeed knows
(``kxfeed db upgrade``; the writer does it at start) and refuses a database stamped
with a revision it does not know: that schema is newer than this code.

New revision (developers): ``python -m shared.store.migrate revision "what changed"``
writes ``migrations/versions/<NNNN>_<slug>.py`` to fill in.
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.config import DbConfig
from shared.store.engine import ensure_schema

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Alembic announces its context on every run at INFO; kxfeed logs the outcome itself.
logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)

#: Serialises concurrent upgrades on PostgreSQL (writer start + ``kxfeed db upgrade``).
_LOCK_ID = 0x6B786665  # "kxfe"


class SchemaTooNew(RuntimeError):
    """The database carries a schema revision this kxfeed does not know."""


def alembic_config(connection: Connection | None = None) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    head = script_directory().get_current_head()
    assert head is not None, "no migrations found"
    return head


def _current(sync_conn: Connection) -> str | None:
    return MigrationContext.configure(sync_conn).get_current_revision()


def _check_known(current: str | None) -> None:
    if current is None:
        return
    known = {rev.revision for rev in script_directory().walk_revisions()}
    if current not in known:
        raise SchemaTooNew(
            f"database schema revision {current!r} is newer than this kxfeed knows "
            f"(head {head_revision()!r}); run a kxfeed version that has it"
        )


def _upgrade(sync_conn: Connection) -> tuple[str | None, str]:
    current = _current(sync_conn)
    _check_known(current)
    command.upgrade(alembic_config(sync_conn), "head")
    return current, head_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(_current)


async def upgrade(engine: AsyncEngine, db: DbConfig) -> tuple[str | None, str]:
    """Migrate to head in one transaction; returns (revision before, revision now)."""
    await ensure_schema(engine, db)
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            await conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_LOCK_ID})")
        return await conn.run_sync(_upgrade)


def _new_revision(message: str) -> None:
    script = script_directory()
    numbers = [int(m.group(1)) for rev in script.walk_revisions() if (m := re.match(r"^(\d+)", rev.revision))]
    rev_id = f"{max(numbers, default=0) + 1:04d}"
    command.revision(alembic_config(), message=message, rev_id=rev_id)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "revision":
        print('usage: python -m shared.store.migrate revision "what changed"', file=sys.stderr)
        sys.exit(2)
    _new_revision(sys.argv[2])
