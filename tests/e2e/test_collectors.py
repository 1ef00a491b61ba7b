"""Sharded and redundant collectors under ``kxfeed up``, against the simulator over a real WebSocket.

- Two collectors ("a" and "b", each its own connector process and config) feed the same
  markets into one bus, beside the orderbook, the writer and the gap filler. The books equal the
  simulator's truth; the collector holding more markets is SIGKILLed: they fail over to the
  other's line (counted), stay VALID and equal to the truth, and no INVALID bookstate is
  published; restarted, it takes no market back; the database holds both lines' deltas and
  snapshots (their own conn each) and every trade once.
- Two shards of one collector: distinct publisher names and journals, every market subscribed by
  exactly one of them, books equal to the truth.

Each connector has a config file of its own (its own control socket), run as a
``[[supervisor.children]]`` entry named after its publisher id.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zmq

from shared.bus import Subscriber
from shared.control import request
from shared.messages import BookState
from tests.e2e.harness import System
from tests.e2e.proof import settle
from tests.support.config import ipc_endpoint, write_config
from tests.support.procs import kxfeed_cmd, wait_until

MARKETS = 12


def connector_child(tmp: Path, name: str, **child: Any) -> dict[str, Any]:
    cmd = kxfeed_cmd("worker", "connector", "--config", str(tmp / f"{name}.toml"), "--log-json")
    return {"name": name, "command": cmd, **child}


def write_connector_config(system: System, name: str, **connector: Any) -> str:
    """``name``.toml: the system's config with a [connector] section of this process's own;
    returns that connector's control endpoint."""
    cfg = system.cfg
    control = ipc_endpoint(system.tmp, name)
    section = msgspec.structs.replace(cfg.connector, control=control, metrics_port=0, **connector)
    write_config(msgspec.structs.replace(cfg, connector=section), system.tmp / f"{name}.toml")
    return control


def children(tmp: Path, connectors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"name": n} for n in ("bus", "sim", "writer", "orderbook", "gapfill")] + connectors


class StateTap:
    """Every bookstate the orderbook publishes, from a thread, while the test runs."""

    def __init__(self, xpub: str) -> None:
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.sub = Subscriber(self.ctx, xpub, ["bookstate."])
        self.seen: list[BookState] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            for m in self.sub.recv_blocking(0.2):
                if type(m) is BookState and m.pub == "orderbook":
                    self.seen.append(m)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sub.close()
        self.ctx.term()


def ob_stats(system: System) -> dict[str, Any]:
    out: dict[str, Any] = system.control("orderbook", "stats")
    return out


def lines_of(system: System, tickers: list[str]) -> dict[str, Any]:
    return {t: system.control("orderbook", "book", ticker=t)["line"] for t in tickers}


@pytest.mark.slow(waits=True)
def test_two_redundant_collectors_fail_over_without_an_invalid_book(tmp_path: Path) -> None:
    conns = [
        connector_child(tmp_path, "connector-a", restart="temporary"),
        connector_child(tmp_path, "connector-b", restart="temporary"),
    ]
    system = System(
        tmp_path,
        sim={"rate": 60.0, "markets": MARKETS},
        supervisor={"children": children(tmp_path, conns)},
    )
    write_connector_config(system, "connector-a", collector="a")
    write_connector_config(system, "connector-b", collector="b")
    tap: StateTap | None = None
    try:
        system.start(timeout=200.0)
        tickers = sorted(system.control("sim", "books"))
        assert len(tickers) == MARKETS

        def all_valid_on_two_lines() -> bool:
            s = ob_stats(system)
            return s["lines"] == 2 and s["books"] == MARKETS and s["valid"] == MARKETS

        assert wait_until(all_valid_on_two_lines, 90), ob_stats(system)
        tap = StateTap(system.cfg.bus.xpub)
        time.sleep(0.5)  # the tap's subscription joins the proxy (nothing to wait on: it only reads)
        before = lines_of(system, tickers)
        assert set(before.values()) <= {"a", "b"}, before  # the first line to come in holds it
        # The collector holding more markets dies (usually a: it started first).
        victim = max(("a", "b"), key=lambda ln: sum(v == ln for v in before.values()))
        survivor = "b" if victim == "a" else "a"
        moved = {t for t, ln in before.items() if ln == victim}

        # Collector a dies without a word: its heartbeats stop.
        held = system.open_conns()
        pid = system.workers()[f"connector-{victim}"]["pid"]
        at = time.time_ns()
        os.kill(pid, signal.SIGKILL)
        assert wait_until(lambda: len(system.open_conns()) < len(held), 30), system.open_conns()
        killed = {c: at for c in held - system.open_conns()}
        assert len(killed) == 1

        assert wait_until(lambda: set(lines_of(system, tickers).values()) == {survivor}, 30), lines_of(
            system, tickers
        )
        s = ob_stats(system)
        assert s["failovers"] >= len(moved) and s["collectors_down"] == 1 and s["valid"] == MARKETS, s
        # The dead collector comes back: its line is rebuilt, and takes no market back.
        request(system.cfg.supervisor.control, "restart", {"name": f"connector-{victim}"}, timeout_s=10.0)
        assert wait_until(lambda: ob_stats(system)["collectors_down"] == 0, 60), ob_stats(system)
        frames = sum(c["frames"] for c in system.control("sim", "sent_conns").values())
        assert wait_until(
            lambda: sum(c["frames"] for c in system.control("sim", "sent_conns").values()) > frames + 200, 60
        )
        assert set(lines_of(system, tickers).values()) == {survivor}
        assert ob_stats(system)["failovers"] == s["failovers"], "a market went back"
        result = settle(system, timeout=60.0, killed=killed)
        tap.stop.set()
        tap.thread.join(5)
        metrics = system.scrape(system.metrics_port("orderbook"))
    except AssertionError:
        print(system.log_tail(80))
        raise
    finally:
        if tap is not None:
            tap.close()
        system.kill()

    invalid = [(m.ticker, m.reason) for m in tap.seen if not m.valid]
    assert invalid == [], f"INVALID published for failed-over markets: {invalid[:10]}"
    failovers = [m for m in tap.seen if m.valid and m.reason == "failover"]
    assert {m.ticker for m in failovers} == moved, "each market reported its switch"
    assert "kxfeed_orderbook_failovers_total{" in metrics
    summary = result.summary()
    assert result.info["connections"] >= 2, summary
    assert result.books == {}, f"books differ from the truth: {dict(list(result.books.items())[:5])}"
    # Ticker messages carry no id: the proof numbers identical ones (one per collector) in turn,
    # so the killed collector's in-flight copy can be counted against the survivor's. Nothing else
    # may be missing; the ticker rows themselves are one per collector (see the README).
    lost = result.lost() - result.tickers_not_stored()
    assert lost == 0, f"lost: {summary}; excused: {result.excuses_text()}"
    assert result.tickers_not_stored() <= 5, summary
    assert result.duplicated_or_foreign() == 0, f"duplicated or wrong: {summary}"
    trades = result.diff["trade"]
    assert trades["sent"] > 0 and trades["stored"] == trades["sent"], summary


@pytest.mark.slow(waits=True)
def test_two_shards_share_the_markets_without_colliding(tmp_path: Path) -> None:
    conns = [connector_child(tmp_path, f"connector-{i}") for i in range(2)]
    system = System(
        tmp_path,
        sim={"rate": 60.0, "markets": MARKETS},
        supervisor={"children": children(tmp_path, conns)},
    )
    controls = [
        write_connector_config(system, f"connector-{i}", shard_count=2, shard_index=i) for i in range(2)
    ]
    try:
        system.start(timeout=200.0)
        tickers = set(system.control("sim", "books"))

        def subscribed() -> list[set[str]]:
            return [set(request(c, "subscriptions", timeout_s=5.0)["markets"]) for c in controls]

        assert wait_until(lambda: set().union(*subscribed()) == tickers, 60), subscribed()
        a, b = subscribed()
        assert a and b and not a & b, (a, b)
        assert wait_until(lambda: ob_stats(system)["valid"] == len(tickers), 90), ob_stats(system)
        assert ob_stats(system)["lines"] == 1
        result = settle(system, timeout=60.0, no_backfill=True)
    except AssertionError:
        print(system.log_tail(80))
        raise
    finally:
        system.kill()
    journals = {p.name for p in (tmp_path / "journal").iterdir()}
    assert {"connector-0", "connector-1"} <= journals, journals
    summary = result.summary()
    assert result.books == {}, f"books differ from the truth: {dict(list(result.books.items())[:5])}"
    # The proof dates the feed's start from the first trade any connection carried; the second
    # shard subscribes later, and trades of its markets made before it did are no shard's (as
    # those before the first subscription are none's with one connector): counted apart.
    assert result.lost() - result.off_connection() == 0, summary
    assert result.duplicated_or_foreign() == 0, summary
    assert result.info["connections"] == 2, summary
