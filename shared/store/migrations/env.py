"""Alembic environment for kxfeed: migrations run on the connection kxfeed passes in.

Use ``kxfeed db upgrade`` (or let the writer upgrade at start); there is no
alembic.ini, so nothing depends on the working directory.
"""

from __future__ import annotations

from alembic import context

from shared.store.schema import metadata

if context.is_offline_mode():
    raise RuntimeError("kxfeed migrations run online only: use `kxfeed db upgrade`")

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("kxfeed migrations need a connection: use `kxfeed db upgrade` (shared.store.migrate)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
