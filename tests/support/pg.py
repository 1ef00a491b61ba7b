"""Where the test PostgreSQL is, and whether it answers."""

from __future__ import annotations

import os
import socket

PG_URL = os.environ.get("KXFEED_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


def pg_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False
