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
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from services import registry
from services.exchange_sim.activity import Engine
from shared.book.book import level_hash
from shared.config import Config
from shared.control import ControlError, request
from shared.kalshi.numbers import rfc3339_ms
from shared.units import parse_count, parse_price
from tests.e2e.rows import Rows, Via, parse_levels, read_counts, read_rows, ticker_value
from tests.support.config import make_config, reported_port, write_config
from tests.support.pg import drop_schema
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


def sim_at(msgs_per_s: float, markets: int, **sim: Any) -> dict[str, Any]:
    """A [sim] section sending about ``msgs_per_s`` frames a second over ``markets`` markets."""
    return {"rate": msgs_per_s / frames_per_step(markets), "markets": markets, **sim}


def sent_frames(system: System) -> int:
    """Frames the simulator has sent so far, over every connection it remembers (those its
    truth kept and those that fell off its bounded log)."""
    return sum(c["frames"] + c["truncated"] for c in system.control("sim", "sent_conns").values())


def pg_db(url: str) -> dict[str, Any]:
    """A [db] section with a fresh PostgreSQL schema (drop it with :func:`drop_pg_schema`)."""
    return {"url": url, "schema": f"kxe2e_{uuid.uuid4().hex[:12]}"}


def drop_pg_schema(url: str, schema: str) -> None:
    asyncio.run(drop_schema(url, schema))


def _http_get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:
        body: bytes = resp.read()
    return body


# ---- the running system ----------------------------------------------------------------------
class System:
    """``kxfeed up`` with every installed worker, as a real process with JSON logs in a file."""

    def __init__(
        self,
        tmp: Path,
        *,
        db: dict[str, Any] | None = None,
        wrap: Sequence[str] = (),
        http_get: Callable[[str], bytes] | None = None,
        **sections: dict[str, Any],
    ) -> None:
        """``wrap``: a command prefix for ``kxfeed up`` (``ip netns exec NS``: another host);
        ``http_get``: how this process GETs the simulator's REST (from where it can reach it)."""
        tmp.mkdir(parents=True, exist_ok=True)
        self.tmp = tmp
        self.wrap = list(wrap)
        self.http_get = http_get or _http_get
        sim = {"rate": 100.0, "markets": 20, "lifecycle_every": 0, **sections.pop("sim", {})}
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
        #: Trades the exchange made before the first one a connection carried (the truth's start).
        self.made_early: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        #: From the last :meth:`db_rows`: (sim conn, sid, xseq) -> recv, and snapshots' (ticker, recv).
        self.stored_recv: tuple[dict[tuple[int, int, int], int], set[tuple[str, int]]] = ({}, set())

    # lifecycle
    def start(self, timeout: float = 300.0) -> None:  # a deadline: 8 workers start in turn
        log = open(self.log_path, "wb")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(
            [*self.wrap, *kxfeed_cmd("up", "--config", str(self.path), "--log-json")],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        sup = self.cfg.supervisor
        names = [c.name for c in sup.children] or list(sup.workers) or registry.default_workers("sim")
        proc = self.proc

        def up_or_gone() -> bool:  # a supervisor that exited (a config error) fails at once
            if proc.poll() is not None:
                return True
            states = self.states()
            return bool(states) and set(states.values()) == {"running"}

        ok = wait_until(up_or_gone, timeout) and proc.poll() is None
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
            # Its children now, not at the last status a test asked for: one restarted since
            # (a new pid) would outlive the run.
            with contextlib.suppress(ControlError, OSError):
                self.status()
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
        """Each worker's /metrics port as it reported it now (port 0: a restart gets a new one)."""
        return {name: self.metrics_port(name) for name in ("supervisor", *registry.default_workers("sim"))}

    def metrics_port(self, worker: str) -> int:
        return reported_port(self.cfg, worker)

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
    def truth_rows(self) -> tuple[dict[str, Rows], Counter[str], Via]:
        """Every WS data frame the simulator sent, keyed as the database keys it (deltas and
        snapshots by the simulator's connection id), and for each row the connections it went
        out on with the wall-clock ns it left at (the simulator's own send time)."""
        conns = self.control("sim", "sent_conns")
        rows: dict[str, Rows] = {"delta": {}, "snapshot": {}, "trade": {}, "ticker": {}}
        via: Via = {k: {} for k in rows}
        info: Counter[str] = Counter()
        ticks_seen: Counter[tuple[Any, ...]] = Counter()
        for conn in sorted(conns, key=int):
            c = int(conn)
            meta = conns[conn]
            info["connections"] += 1
            info["truncated"] += meta["truncated"]
            info["withheld"] += meta["withheld"]
            if meta["withheld"]:
                for sid, seq in self.control("sim", "gaps", conn=c):
                    self.withheld.add((c, int(sid), int(seq)))
            writes = [(int(i), int(ns)) for i, ns in self.control("sim", "sent_times", conn=c)]
            w = 0
            for index, raw in enumerate(self._sent(c, meta["frames"])):
                while w + 1 < len(writes) and writes[w + 1][0] <= index:
                    w += 1
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
                    # One row per message: several of one market can share a millisecond.
                    value, table = ticker_value(m), "ticker"
                    ident = (m["market_ticker"], m["ts_ms"], value)
                    key = (*ident, ticks_seen[ident])
                    ticks_seen[ident] += 1
                else:
                    continue
                info[kind] += 1
                rows[table].setdefault(key, value)
                via[table].setdefault(key, {})[c] = writes[w][1] if writes else 0
        self._off_connection_trades(rows, via, info)
        return rows, info, via

    def _off_connection_trades(self, rows: dict[str, Rows], via: Via, info: Counter[str]) -> None:
        """Trades the exchange made while no connection carried them (a disconnect, a killed
        connector), from the first one a connection carried on: rows of the truth too (the gap
        filler backfills them from REST), with no connection in ``via``. Those made before it
        (before the first subscription) are kept in :attr:`made_early`: a backfill window that
        reaches back to them (a gap filler restarted before the first trade) stores real trades,
        not foreign ones."""
        made = self.made_trades()
        carried = [ms for key, (ms, _) in made.items() if key in rows["trade"]]
        self.made_early = {}
        if not carried:
            return
        since = min(carried)
        for key, (ms, value) in made.items():
            if ms < since:
                self.made_early[key] = value
            elif key not in rows["trade"]:
                rows["trade"][key] = value
                via["trade"][key] = {}
                info["trade_off_connection"] += 1

    def made_trades(self) -> dict[tuple[Any, ...], tuple[int, tuple[Any, ...]]]:
        """Every trade the simulator keeps, from its REST ``/markets/trades`` (all pages):
        (trade_id,) -> (ms, the row as the writer stores it)."""
        host = "127.0.0.1" if self.cfg.sim.host in ("", "0.0.0.0") else self.cfg.sim.host
        base = f"http://{host}:{reported_port(self.cfg, 'sim', 'http')}/trade-api/v2/markets/trades"
        out: dict[tuple[Any, ...], tuple[int, tuple[Any, ...]]] = {}
        cursor = ""
        while True:
            url = f"{base}?limit=1000" + (f"&cursor={cursor}" if cursor else "")
            page = json.loads(self.http_get(url))
            for t in page["trades"]:
                ms = rfc3339_ms(t["created_time"])
                assert ms is not None, t
                value = (
                    t["ticker"],
                    parse_price(t["yes_price_dollars"]),
                    parse_count(t["count_fp"]),
                    t["taker_outcome_side"],
                )
                out[(t["trade_id"],)] = (ms, value)
            cursor = page.get("cursor") or ""
            if not cursor:
                return out

    def open_conns(self) -> set[int]:
        """Simulator connections open now."""
        return {int(c["conn"]) for c in self.control("sim", "connections")}

    def _sent(self, conn: int, total: int, page: int = 50_000) -> Iterator[str]:
        for start in range(0, total, page):
            yield from self.control("sim", "sent", timeout_s=60.0, conn=conn, start=start, count=page)

    def db_rows(self, truth: dict[str, Rows]) -> dict[str, Rows]:
        """The same rows as stored (WS rows only: REST snapshots and polled ticks are not the feed),
        each stored connection renamed to the simulator connection whose frames it holds."""
        rows, recv_at, snap_recv = asyncio.run(read_rows(self.cfg.db, truth))
        self.stored_recv = (recv_at, snap_recv)
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
