"""Soak: ``kxfeed up`` for a long time under faults; does anything grow without bound?

  .venv/bin/python bench/soak.py [--minutes 30] [--msgs 2000] [--pg URL] [--json PATH]

For ``--minutes`` at about ``--msgs`` simulator messages/s: the simulator drops the connection
every 60 s, skips a seq every 30 s, and a random worker (bus, writer, orderbook, arb, gapfill,
poller, connector) is SIGKILLed every 5 minutes (tests/e2e/chaos.py drives them). A run shorter
than 30 minutes scales that schedule down with it (3 minutes: every 6 s, 3 s and 30 s), and
the journal's retention with it (``[journal] retention_s`` = run / 6, segments roll at a fifth
of that), so that retention must act within the run.

Every ``--sample-s`` it records, per worker process, RSS and open file descriptors (from
/proc), the journal's bytes on disk and its oldest segment, and the database's size (SQLite:
the file with its WAL; PostgreSQL: the schema's relations). It prints each figure's slope per
hour over the second half of the run (the first half warms caches and fills books), and fails
(exit status 1) when:

- a worker's RSS rises faster than ``--rss-mb-per-h`` over the second half AND by more than
  ``--rss-min-growth-mb`` in it (both: a slope alone is noise on a short run);
- a worker's open descriptors rise by ``--fd-growth`` or more over the second half;
- the journal holds a segment last written longer ago than ``retention_s`` plus
  ``--journal-slack-s``: it exceeds its retention;
- the supervisor gave up, or a worker is not running at the end.

The simulator's figures are shown but not judged: it is the test exchange, not kxfeed.

Slopes are per process: a killed worker's replacement is a new process and its figures start
again. A process's own first ``--warmup-s`` (replaying the journal after a kill, filling books
and caches) are its warm-up, like the first half is the run's: each process is judged on its
samples in the second half and past its warm-up, and the process with the longest such span
speaks for the worker (the output says from when it was judged).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e import chaos  # noqa: E402
from tests.e2e.harness import System, drop_pg_schema, pg_db, sent_frames, sim_at  # noqa: E402

FULL_MINUTES = 30.0
#: The full run's schedule (seconds): scaled by minutes / 30 for shorter runs.
DISCONNECT_S, GAP_S, KILL_S = 60.0, 30.0, 300.0


@dataclass
class Series:
    """One figure over time for one process: (elapsed s, value)."""

    points: list[tuple[float, float]] = field(default_factory=list)

    def slope_per_h(self) -> float:
        """Least-squares slope, units per hour (0 with fewer than three points)."""
        n = len(self.points)
        if n < 3:
            return 0.0
        mt = sum(t for t, _ in self.points) / n
        mv = sum(v for _, v in self.points) / n
        var = sum((t - mt) ** 2 for t, _ in self.points)
        if var == 0:
            return 0.0
        return sum((t - mt) * (v - mv) for t, v in self.points) / var * 3600.0

    def span_s(self) -> float:
        return self.points[-1][0] - self.points[0][0] if self.points else 0.0


@dataclass
class Samples:
    #: worker -> pid -> figure -> series
    procs: dict[str, dict[int, dict[str, Series]]] = field(default_factory=dict)
    journal_bytes: Series = field(default_factory=Series)
    journal_oldest_s: Series = field(default_factory=Series)
    db_bytes: Series = field(default_factory=Series)
    errors: list[str] = field(default_factory=list)

    def proc(self, worker: str, pid: int, figure: str) -> Series:
        return self.procs.setdefault(worker, {}).setdefault(pid, {}).setdefault(figure, Series())


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def open_fds(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def journal_figures(root: Path, now: float) -> tuple[int, float]:
    """(bytes of every file under the journal dir, age in s of the oldest segment's last write).

    Retention bounds segments; a consumer's cursor file is rewritten only when it moves."""
    total, oldest = 0, now
    for dirpath, _, files in os.walk(root):
        for name in files:
            try:
                st = os.stat(os.path.join(dirpath, name))
            except OSError:
                continue  # pruned while walking
            total += st.st_size
            if name.endswith(".seg"):
                oldest = min(oldest, st.st_mtime)
    return total, now - oldest


def db_bytes(system: System) -> int:
    db = system.cfg.db
    if db.url.startswith("sqlite"):
        path = Path(db.url.split("///", 1)[1])
        return sum(p.stat().st_size for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists())
    import asyncpg

    async def size() -> int:
        conn = await asyncpg.connect(db.url.replace("+asyncpg", ""))
        try:
            value = await conn.fetchval(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'",
                db.schema or "public",
            )
            return int(value)
        finally:
            await conn.close()

    return asyncio.run(size())


def sample(system: System, s: Samples, elapsed: float) -> None:
    for name, w in system.workers().items():
        pid = w.get("pid")
        if not isinstance(pid, int) or pid <= 0 or w.get("state") != "running":
            continue
        rss, fds = rss_mb(pid), open_fds(pid)
        if rss is not None and fds is not None:
            s.proc(name, pid, "rss_mb").points.append((elapsed, rss))
            s.proc(name, pid, "fds").points.append((elapsed, fds))
    sup = system.proc.pid if system.proc is not None else 0
    rss, fds = rss_mb(sup), open_fds(sup)
    if rss is not None and fds is not None:
        s.proc("supervisor", sup, "rss_mb").points.append((elapsed, rss))
        s.proc("supervisor", sup, "fds").points.append((elapsed, fds))
    size, oldest = journal_figures(Path(system.cfg.journal.dir), time.time())
    s.journal_bytes.points.append((elapsed, size))
    s.journal_oldest_s.points.append((elapsed, oldest))
    try:
        s.db_bytes.points.append((elapsed, db_bytes(system)))
    except Exception as exc:  # a database briefly locked or restarting: counted, the soak goes on
        s.errors.append(f"db size at {elapsed:.0f}s: {exc!r}")


def second_half(series: Series, half: float, warmup_s: float = 0.0) -> Series:
    """The samples in the second half, and (for a process) past its own warm-up."""
    born = series.points[0][0] if series.points else 0.0
    return Series([p for p in series.points if p[0] >= max(half, born + warmup_s)])


def verdict(s: Samples, args: argparse.Namespace, seconds: float, retention_s: float) -> dict[str, Any]:
    half = seconds / 2
    workers: dict[str, Any] = {}
    failures: list[str] = []
    for name, pids in sorted(s.procs.items()):
        judged = name != "sim"  # the test exchange (and its bounded truth): shown, not judged
        # The process that lived longest in the second half speaks for the worker.
        halves = {
            pid: {f: second_half(x, half, args.warmup_s) for f, x in figs.items()}
            for pid, figs in pids.items()
        }
        pid = max(halves, key=lambda p: halves[p]["rss_mb"].span_s())
        rss, fds = halves[pid]["rss_mb"], halves[pid]["fds"]
        rss_slope, fd_slope = rss.slope_per_h(), fds.slope_per_h()
        growth = rss_slope * rss.span_s() / 3600
        fd_growth = (fds.points[-1][1] - min(v for _, v in fds.points)) if fds.points else 0
        first = pids[min(pids)]["rss_mb"].points[0][1]
        workers[name] = {
            "processes": len(pids),
            "rss_mb_first": round(first, 1),
            "rss_mb_last": round(rss.points[-1][1], 1) if rss.points else None,
            "rss_mb_per_h": round(rss_slope, 1),
            "fds_last": int(fds.points[-1][1]) if fds.points else None,
            "fds_per_h": round(fd_slope, 1),
            "judged_from_s": round(rss.points[0][0]) if rss.points else None,
        }
        workers[name]["judged"] = judged
        if not judged:
            continue
        if rss_slope > args.rss_mb_per_h and growth > args.rss_min_growth_mb:
            failures.append(f"{name}: RSS +{rss_slope:.0f} MB/h (+{growth:.1f} MB in the second half)")
        if fd_growth >= args.fd_growth:
            failures.append(f"{name}: open descriptors +{fd_growth:.0f} in the second half")
    oldest = max((v for _, v in s.journal_oldest_s.points), default=0.0)
    if oldest > retention_s + args.journal_slack_s:
        failures.append(
            f"journal: a segment last written {oldest:.0f}s ago is kept, retention_s {retention_s:.0f}"
            f" (+{args.journal_slack_s:.0f}s slack)"
        )
    return {
        "workers": workers,
        "journal_bytes_last": int(s.journal_bytes.points[-1][1]) if s.journal_bytes.points else 0,
        "journal_bytes_per_h": round(second_half(s.journal_bytes, half).slope_per_h()),
        "journal_oldest_s": round(oldest),
        "retention_s": retention_s,
        "db_bytes_last": int(s.db_bytes.points[-1][1]) if s.db_bytes.points else 0,
        "db_bytes_per_h": round(second_half(s.db_bytes, half).slope_per_h()),
        "failures": failures,
    }


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up the system on SIGTERM too
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=FULL_MINUTES)
    ap.add_argument("--msgs", type=float, default=2000.0, help="target simulator messages/s")
    ap.add_argument("--markets", type=int, default=60)
    ap.add_argument("--pg", help="PostgreSQL URL (default: a SQLite file)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sample-s", type=float, default=0.0, help="sampling period (0: run / 120, >= 1 s)")
    ap.add_argument("--rss-mb-per-h", type=float, default=20.0)
    ap.add_argument("--rss-min-growth-mb", type=float, default=4.0)
    ap.add_argument("--fd-growth", type=int, default=8)
    ap.add_argument("--warmup-s", type=float, default=120.0, help="a process's own warm-up, not judged")
    ap.add_argument("--journal-slack-s", type=float, default=0.0, help="0: a fifth of the retention")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()

    seconds = args.minutes * 60
    scale = min(1.0, args.minutes / FULL_MINUTES)
    retention_s = max(30.0, seconds / 6)
    args.journal_slack_s = args.journal_slack_s or retention_s / 5
    every = args.sample_s or max(1.0, seconds / 120)
    plan = chaos.Plan(
        seconds=seconds,
        kill_every_s=KILL_S * scale,
        disconnect_every_s=DISCONNECT_S * scale,
        skip_per_second=0.0,
        skip_every_s=GAP_S * scale,
        seed=args.seed,
    )
    tmp = Path(tempfile.mkdtemp(prefix="kxfeed-soak-"))
    db = pg_db(args.pg) if args.pg else None
    system = System(
        tmp,
        db=db,
        # A soak proves nothing row by row: the ground truth keeps little, so the simulator's own
        # memory stays flat and measures the same way as the workers'.
        sim=sim_at(args.msgs, args.markets, truth_max_frames=2_000, truth_max_events=50_000),
        journal={"retention_s": retention_s, "segment_age_s": retention_s / 5, "segment_bytes": 4 << 20},
    )
    samples = Samples()
    next_sample = [0.0]

    def tick(elapsed: float) -> None:
        if elapsed >= next_sample[0]:
            next_sample[0] += every
            sample(system, samples, elapsed)

    try:
        system.start()
        frames0, t0 = sent_frames(system), time.monotonic()
        out = chaos.run(system, plan, on_tick=tick)
        sample(system, samples, time.monotonic() - t0)
        elapsed = time.monotonic() - t0
        frames = sent_frames(system) - frames0
        gave_up = system.proc is None or system.proc.poll() is not None
        states = system.states()
        code = system.stop(120)
    finally:
        system.kill()
        if db is not None and args.pg:
            drop_pg_schema(args.pg, db["schema"])
    gave_up = gave_up or any("intensity exceeded" in str(r.get("msg")) for r in system.log_records())
    v = verdict(samples, args, seconds, retention_s)
    if gave_up:
        v["failures"].append("the supervisor gave up")
    if set(states.values()) != {"running"}:
        v["failures"].append(f"not all running at the end: {states}")
    figures = {
        "minutes": round(elapsed / 60, 1),
        "sim_msgs_per_s": round(frames / elapsed) if elapsed else 0,
        "schedule_s": {
            "disconnect": plan.disconnect_every_s,
            "gap": plan.skip_every_s,
            "kill": plan.kill_every_s,
        },
        "kills": dict(out.kills),
        "disconnects": out.disconnects,
        "seq_skips": out.seq_skips,
        "samples": len(samples.journal_bytes.points),
        "supervisor_exit": code,
        "driver_errors": out.errors + samples.errors,
        **v,
    }
    print("figures: " + json.dumps(figures))
    print(
        f"soak {elapsed / 60:.1f} min at {figures['sim_msgs_per_s']:,} msgs/s: "
        f"kills {sum(out.kills.values())}, "
        f"disconnects {out.disconnects}, seq skips {out.seq_skips} (every {plan.kill_every_s:.0f}/"
        f"{plan.disconnect_every_s:.0f}/{plan.skip_every_s:.0f} s); slopes over the second half"
        f" (a restarted process: past its first {args.warmup_s:.0f} s):"
    )
    for name, w in v["workers"].items():
        print(
            f"  {name:<10} RSS {w['rss_mb_first']:.0f} -> {w['rss_mb_last']:.0f} MB, "
            f"{w['rss_mb_per_h']:+.0f} MB/h; "
            f"fds {w['fds_last']}, {w['fds_per_h']:+.0f}/h; processes {w['processes']}"
            + (f", judged from {w['judged_from_s']} s" if w["processes"] > 1 else "")
            + ("" if w["judged"] else " (the simulator: shown, not judged)")
        )
    print(
        f"  journal {v['journal_bytes_last'] / 2**20:.1f} MiB on disk, "
        f"{v['journal_bytes_per_h'] / 2**20:+.0f} MiB/h, "
        f"oldest segment {v['journal_oldest_s']}s vs retention_s {retention_s:.0f}; database "
        f"{v['db_bytes_last'] / 2**20:.1f} MiB, {v['db_bytes_per_h'] / 2**20:+.0f} MiB/h"
    )
    print(
        f"rule: RSS > {args.rss_mb_per_h:g} MB/h and > {args.rss_min_growth_mb:g} MB in the second half, "
        f"descriptors +{args.fd_growth} in it, a journal segment older than retention + "
        f"{args.journal_slack_s:.0f}s -> {'FAILED: ' + '; '.join(v['failures']) if v['failures'] else 'OK'}"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 1 if v["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
