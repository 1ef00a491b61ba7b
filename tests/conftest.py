"""Shared fixtures: isolated configs (private ports, temp data dir), PostgreSQL access.

The helpers themselves live in ``tests/support`` (used by tests and bench alike).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.config import Config
from tests.support.config import make_config
from tests.support.pg import PG_URL, pg_reachable

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    return make_config(tmp_path)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """URL of the test PostgreSQL; skips only when unreachable AND KXFEED_REQUIRE_POSTGRES is unset."""
    if not pg_reachable():
        if os.environ.get("KXFEED_REQUIRE_POSTGRES"):
            pytest.fail(
                "PostgreSQL at 127.0.0.1:5432 is required (KXFEED_REQUIRE_POSTGRES is set) but unreachable"
            )
        pytest.skip("no PostgreSQL at 127.0.0.1:5432")
    yield PG_URL


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The whole-system tests (marked ``slow``: each runs several workers flat out) run one after
    another on one xdist worker, so two of them never share the machine's two cores; the rest
    spread over both workers (``-n 2 --dist loadgroup`` in the README's test command).

    ``slow(waits=True)`` marks a whole system that mostly waits (a simulator at tens of messages
    a second; the time goes to heartbeats, failovers, restarts and settling): those run one after
    another in a second group, beside the flat-out ones, so the suite is not the sum of both."""
    for item in items:
        marker = item.get_closest_marker("slow")
        if marker is not None:
            group = "system-waits" if marker.kwargs.get("waits") else "system"
            item.add_marker(pytest.mark.xdist_group(group))
