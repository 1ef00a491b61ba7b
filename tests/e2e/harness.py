"""The whole system under ``kxfeed up``, and its proof against the simulator's ground truth.

Used by the end-to-end tests and by ``bench/e2e.py`` / ``bench/chaos.py``. Ground truth comes
from the sim worker's control socket (``sent_conns``, ``sent``, ``books``); the stored rows
from the database the writer fills; the live books from the orderbook's ``hashes`` query.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services import registry
from services.exchange_sim.activity import Engine
from services.orderbook.book import level_hash
from shared.config import Config
from shared.control import ControlError, request
from shared.units import parse_count, parse_price
from tests.e2e.rows import (
    Rows,
    awaiting_snapshot,
    compare,
    parse_levels,
    read_counts,
    read_rows,
    snapshot_key_collisions,
)
from tests.support.config import make_config, write_config
from tests.support.procs import ROOT, kxfeed_cmd, wait_until

YES, NO = 0, 1

#: Supervisor timings roomy enough for a loaded 2-core machine, short enough for chaos runs.
SUPERVISOR = {
    "shutdown_timeout_s": 20.0,
    "ready_timeout_s": 60.0,
    "heartbeat_timeout_s": 10.0,
    "backoff_initial_s": 0.2,
    "backoff_max_s": 1.0,
    "max_restarts": 50,
    "max_restarts_period_s": 60.0,
}


def frames_per_step(markets: int) -> float:
    """Simulator frames per activity step (what turns a messages/s target into a step rate)."""
    eng = Engine(7, markets, lifecycle_every=0)
    eng.initial_emissions(0)
    n = 20_000
    return len(eng.run(n, 0)) / n


def sent_frames(system: System) -> int:
    """Frames the simulator has sent so far, over every connection."""
    return sum(c["frames"] for c in system.control("sim", "sent_conns").values())


def pg_db(url: str) -> dict[str, Any]:
    """A [db] section with a fresh PostgreSQL schema (drop it with :func:`drop_pg_schema`)."""
    return {"url": url, "schema": f"kxe2e_{uuid.uuid4().hex[:12]}"}


def drop_pg_schema(url: str, schema: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(url.replace("+asyncpg", ""))
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(run())


# ---- the running system ----------------------------------------------------------------------
class System:
    """``kxfeed up`` with every installed worker, as a real process with JSON logs in a file."""

    def __init__(self, tmp: Path, *, db: dict[str, Any] | None = None, **sections: dict[str, Any]) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        self.tmp = tmp
        sim = {"port": _port(), "rate": 100.0, "markets": 20, "lifecycle_every": 0, **sections.pop("sim", {})}
        sup = {**SUPERVISOR, **sections.pop("supervisor", {})}
        extra: dict[str, Any] = {"sim": sim, "supervisor": sup, **sections}
        if db is not None:
            extra["db"] = db
        self.cfg: Config = make_config(tmp, **extra)
        self.path = write_config(self.cfg, tmp / "kx.toml")
        self.log_path = tmp / "up.log"
        self.proc: subprocess.Popen[bytes] | None = None
        #: (simulator connection, sid, seq) the simulator withheld (seq skips), from the truth.
        self.withheld: set[tuple[int, int, int]] = set()
        #: Tickers sharing one (market, ms) with the first one sent: the other values.
        self.ticker_alts: dict[tuple[Any, ...], set[tuple[Any, ...]]] = {}
        #: From the last :meth:`db_rows`: (sim conn, sid, xseq) -> recv, and snapshots' (ticker, recv).
        self.stored_recv: tuple[dict[tuple[int, int, int], int], set[tuple[str, int]]] = ({}, set())

    # lifecycle
    def start(self, timeout: float = 90.0) -> None:
        log = open(self.log_path, "wb")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(
            kxfeed_cmd("up", "--config", str(self.path), "--log-json"),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        names = registry.available()
        ok = wait_until(
            lambda: self.states() and all(s == "running" for s in self.states().values()), timeout
        )
        assert ok and set(self.states()) == set(names), f"not all running: {self.states()}\n{self.log_tail()}"

    def stop(self, timeout: float = 60.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return -9

    def kill(self) -> None:
        """Cleanup after a failure: the supervisor, then every worker it last reported whose
        command line names this run's directory (workers run in sessions of their own)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        for w in self._last_workers:
            pid = w.get("pid")
            if isinstance(pid, int) and pid > 0:
                with contextlib.suppress(OSError):
                    if str(self.tmp).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                        os.kill(pid, signal.SIGKILL)

    _last_workers: list[dict[str, Any]] = []

    # supervisor
    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = request(self.cfg.supervisor.control, "status", timeout_s=3.0)
        self._last_workers = list(out.get("workers", []))
        return out

    def workers(self) -> dict[str, dict[str, Any]]:
        try:
            return {w["worker"]: w for w in self.status()["workers"]}
        except ControlError:
            return {}

    def states(self) -> dict[str, str]:
        return {n: str(w.get("state")) for n, w in self.workers().items()}

    def log_tail(self, n: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        return ""

    def log_records(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):
                    out.append(json.loads(line))
        return out

    # workers
    def control(self, worker: str, cmd: str, timeout_s: float = 10.0, **args: Any) -> Any:
        section = {"bus": "busproxy"}.get(worker, worker)
        return request(getattr(self.cfg, section).control, cmd, args, timeout_s=timeout_s)

    def metrics_ports(self) -> dict[str, int]:
        out = {"supervisor": self.cfg.supervisor.metrics_port}
        for name in registry.available():
            section = getattr(self.cfg, {"bus": "busproxy"}.get(name, name))
            out[name] = section.metrics_port
        return out

    def scrape(self, port: int) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            body: str = resp.read().decode()
        return body

    def cli(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            kxfeed_cmd(*args, "--config", str(self.path)),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    # ---- ground truth vs. stored rows vs. live books -----------------------------------------
    def truth_rows(self) -> tuple[dict[str, Rows], Counter[str], dict[str, dict[tuple[Any, ...], set[int]]]]:
        """Every WS data frame the simulator sent, keyed as the database keys it (deltas and
        snapshots by the simulator's connection id), and the connections each row went out on."""
        conns = self.control("sim", "sent_conns")
        rows: dict[str, Rows] = {"delta": {}, "snapshot": {}, "trade": {}, "ticker": {}}
        via: dict[str, dict[tuple[Any, ...], set[int]]] = {k: {} for k in rows}
        info: Counter[str] = Counter()
        for conn in sorted(conns, key=int):
            c = int(conn)
            meta = conns[conn]
            info["connections"] += 1
            info["truncated"] += meta["truncated"]
            info["withheld"] += meta["withheld"]
            if meta["withheld"]:
                for sid, seq in self.control("sim", "gaps", conn=c):
                    self.withheld.add((c, int(sid), int(seq)))
            for raw in self._sent(c, meta["frames"]):
                f = json.loads(raw)
                kind = f.get("type")
                m = f.get("msg") or {}
                if kind == "orderbook_delta":
                    key: tuple[Any, ...] = (c, f["sid"], f["seq"])
                    value: tuple[Any, ...] = (
                        m["market_ticker"], m["side"], parse_price(m["price_dollars"]),
                        parse_count(m["delta_fp"], signed=True),
                    )  # fmt: skip
                    table = "delta"
                elif kind == "orderbook_snapshot":
                    key = (c, f["sid"], f["seq"])
                    yes, no = (
                        parse_levels(m.get("yes_dollars_fp", [])),
                        parse_levels(m.get("no_dollars_fp", [])),
                    )
                    value, table = (m["market_ticker"], yes, no), "snapshot"
                elif kind == "trade":
                    key = (m["trade_id"],)
                    value = (
                        m["market_ticker"],
                        parse_price(m["yes_price_dollars"]),
                        parse_count(m["count_fp"]),
                        m["taker_side"],
                    )
                    table = "trade"
                elif kind == "ticker":
                    key = (m["market_ticker"], m["ts_ms"])
                    value, table = (parse_price(m["price_dollars"]), parse_count(m["volume_fp"])), "ticker"
                else:
                    continue
                info[kind] += 1
                seen = rows[table].get(key)
                if seen is None:
                    rows[table][key] = value
                elif table == "ticker" and seen != value:
                    # Several tickers of one market in one millisecond: the rows are compared per
                    # key (any of them), the count of rows proves each was stored.
                    self.ticker_alts.setdefault(key, set()).add(value)
                via[table].setdefault(key, set()).add(c)
        return rows, info, via

    def _sent(self, conn: int, total: int, page: int = 50_000) -> Iterator[str]:
        for start in range(0, total, page):
            yield from self.control("sim", "sent", timeout_s=60.0, conn=conn, start=start, count=page)

    def db_rows(self, truth: dict[str, Rows]) -> dict[str, Rows]:
        """The same rows as stored (WS rows only: REST snapshots and polled ticks are not the feed),
        each stored connection renamed to the simulator connection whose frames it holds."""
        rows, recv_at, snap_recv, ws_ticks = asyncio.run(read_rows(self.cfg.db, truth))
        self.stored_recv = (recv_at, snap_recv)
        # Several tickers of one market can share a millisecond: rows are compared per key,
        # and this count proves each of them was stored.
        self.stored_ws_ticks = ws_ticks
        return rows

    def db_counts(self) -> dict[str, int]:
        return asyncio.run(read_counts(self.cfg.db))

    def book_mismatches(self) -> dict[str, str]:
        """Markets whose live book (orderbook worker) differs from the simulator's true book."""
        truth = self.control("sim", "books", timeout_s=30.0)
        held = self.control("orderbook", "hashes", timeout_s=30.0)
        bad: dict[str, str] = {}
        for ticker, book in truth.items():
            h = 0
            for side, key in ((YES, "yes"), (NO, "no")):
                for price, size in book[key]:
                    h ^= level_hash(side, price, size)
            want = f"{h & 0xFFFFFFFFFFFFFFFF:016x}"
            got = held.get(ticker)
            if got is None:
                bad[ticker] = "no book held"
            elif not got["valid"]:
                bad[ticker] = "invalid"
            elif got["hash"] != want:
                bad[ticker] = f"hash {got['hash']} != truth {want}"
        return bad


def _port() -> int:
    from tests.support.config import free_port

    return free_port()


@dataclass
class Settled:
    """The outcome of :func:`settle`: the comparison, and the counts behind it."""

    diff: dict[str, dict[str, Any]]
    books: dict[str, str]
    info: Counter[str] = field(default_factory=Counter)

    def snapshot_collisions(self) -> int:
        """Of the lost WS snapshots, those that shared a receive time with a stored one."""
        return len(self.diff["snapshot"].get("same_batch_key_collision", []))

    def recovering(self) -> int:
        return len(self.diff["delta"].get("recovering", []))

    def in_flight(self) -> int:
        return sum(len(d.get("in_flight", [])) for d in self.diff.values())

    def tickers_not_stored(self) -> int:
        """Ticker messages sent but without a row (two in one ms used to share one)."""
        return max(self.info["ticker"] - self.info["ticker_rows_stored"], 0)

    def lost(self) -> int:
        return sum(len(d["missing"]) for d in self.diff.values())

    def duplicated_or_foreign(self) -> int:
        return sum(len(d["extra"]) + len(d["differ"]) for d in self.diff.values())

    def summary(self) -> dict[str, Any]:
        return {
            kind: {k: (v if isinstance(v, int) else len(v)) for k, v in d.items()}
            for kind, d in self.diff.items()
        } | {"books_mismatched": len(self.books), "sim": dict(self.info)}


def settle(
    system: System, timeout: float = 30.0, *, lossy_conns: set[int] | frozenset[int] = frozenset()
) -> Settled:
    """Pause the simulator, wait for the pipeline to drain, and compare everything with the truth.

    ``lossy_conns``: simulator connections open when the connector was SIGKILLed; what was in
    flight inside the killed process is gone (Kalshi does not replay), counted apart as ``in_flight``.
    """
    system.control("sim", "pause")
    last: list[Settled] = []

    def done() -> bool:
        truth, info, via = system.truth_rows()
        diff = compare(truth, system.db_rows(truth))
        awaiting = awaiting_snapshot(truth, system.withheld)
        recovering = [k for k in diff["delta"]["missing"] if k in awaiting]
        diff["delta"]["missing"] = [k for k in diff["delta"]["missing"] if k not in awaiting]
        diff["delta"]["recovering"] = recovering
        # Snapshots of one market received in one read share a receive time; a key that merged
        # them (the writer's old (ticker, recv)) loses one. Still lost: reported, not excused.
        diff["snapshot"]["same_batch_key_collision"] = snapshot_key_collisions(
            truth, diff["snapshot"]["missing"], system.stored_recv
        )
        # Of tickers sharing a (ticker, ms) key the row read back may be any one of them.
        kept_other = [d for d in diff["ticker"]["differ"] if d[2] in system.ticker_alts.get(d[0], ())]
        diff["ticker"]["differ"] = [d for d in diff["ticker"]["differ"] if d not in kept_other]
        diff["ticker"]["same_ms_kept_later"] = kept_other
        for kind, d in diff.items():
            killed = [k for k in d["missing"] if via[kind][k] <= lossy_conns]
            if killed:
                d["missing"] = [k for k in d["missing"] if not via[kind][k] <= lossy_conns]
            d["in_flight"] = killed
        info["ticker_rows_stored"] = system.stored_ws_ticks
        s = Settled(diff, system.book_mismatches(), info)
        last[:] = [s]
        return s.lost() == 0 and not s.books

    wait_until(done, timeout, interval=1.0)
    return last[0]
