"""End to end against the exchange simulator: bus, sim, connector and orderbook as real
processes. The books equal the simulator's ground truth, and a restarted builder is VALID
again within 2 s of coming up (it asks the connector for fresh snapshots of every market)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.config import Config
from shared.control import request
from tests.support.config import make_config, write_config
from tests.support.control import stats
from tests.support.procs import spawn, stop, stop_all, wait_until


class Stack:
    def __init__(self, tmp: Path) -> None:
        # No lifecycle actions: a market closing mid-test leaves the truth a book the orderbook
        # rightly drops (this test is about books, the lifecycle has its own).
        self.cfg: Config = make_config(tmp, sim={"markets": 12, "rate": 50.0, "lifecycle_every": 0})
        self.path = write_config(self.cfg, tmp / "kxfeed.toml")
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        for name in ("bus", "sim"):
            self.start(name)
        assert wait_until(lambda: stats(self.cfg.sim.control).get("ready"), 30), "sim not ready"
        self.start("connector")
        assert wait_until(lambda: stats(self.cfg.connector.control).get("connected") == 1, 30), (
            "no connection"
        )

    def start(self, name: str) -> None:
        self.procs[name] = spawn("worker", name, "--config", str(self.path))

    def all_valid(self) -> bool:
        ob = stats(self.cfg.orderbook.control)
        markets = stats(self.cfg.connector.control).get("markets", 0)
        return bool(ob) and markets > 0 and ob["invalid"] == 0 and ob["valid"] >= markets

    def assert_books_match_truth(self) -> int:
        request(self.cfg.sim.control, "pause")
        try:
            time.sleep(0.5)  # let what is in flight land
            truth = request(self.cfg.sim.control, "books")
            for ticker, want in truth.items():
                got = request(self.cfg.orderbook.control, "book", {"ticker": ticker, "depth": 0})
                assert got["valid"], (ticker, got["reason"])
                assert sorted(map(tuple, got["yes"])) == sorted(map(tuple, want["yes"])), ticker
                assert sorted(map(tuple, got["no"])) == sorted(map(tuple, want["no"])), ticker
            return len(truth)
        finally:
            request(self.cfg.sim.control, "resume")

    def close(self) -> None:
        stop_all(reversed(list(self.procs.values())))


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = Stack(tmp_path)
    yield s
    s.close()


def test_books_match_the_simulator_and_a_restarted_builder_is_valid_from_fresh_snapshots(
    stack: Stack,
) -> None:
    stack.start("orderbook")
    assert wait_until(stack.all_valid, 20, 0.02), stats(stack.cfg.orderbook.control)
    assert wait_until(lambda: stats(stack.cfg.orderbook.control).get("ready"), 10)
    assert stack.assert_books_match_truth() >= 12
    time.sleep(0.5)

    old = stack.procs["orderbook"]
    assert stop(old) == 0
    spawned = time.monotonic()
    stack.start("orderbook")
    assert wait_until(lambda: bool(stats(stack.cfg.orderbook.control)), 20, 0.01)
    up = time.monotonic()
    assert wait_until(stack.all_valid, 60, 0.02), stats(stack.cfg.orderbook.control)
    valid = time.monotonic()
    # Shown, not asserted: a duration on a loaded machine says nothing. What makes it fast is
    # asserted instead: it asked the connector for fresh snapshots rather than wait for them.
    print(f"restarted builder VALID {valid - up:.2f}s after coming up, {valid - spawned:.2f}s after spawn")
    s = stats(stack.cfg.orderbook.control)
    assert s["snapshot_requests_connector"] >= 1
    assert stack.assert_books_match_truth() >= 12
