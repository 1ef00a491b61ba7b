"""The database: engines, schema and column types, the writer's SQL, read queries, the gap
audit, and Alembic migrations. One package shared by the writer, the gap filler, the CLI and
the gateway; it imports nothing from ``services``.
"""
