"""Chaos: ``kxfeed up`` into PostgreSQL under faults, then proof nothing was lost or duplicated.

  .venv/bin/python bench/chaos.py [--seconds 300] [--msgs 5000] [--pg URL] [--seed N] [--json PATH]
                                 [--in-flight-ms 200] [--resync-s 10]

For ``--seconds`` (the issue: 5 minutes) at about ``--msgs`` messages/s (the issue: 5,000) from
the simulator: SIGKILL a random worker every 15 s (bus, writer, orderbook, arb, gapfill,
poller, connector; never the simulator, which holds the ground truth), the simulator drops
every connection every 30 s and skips a seq on 1% of seconds, and PostgreSQL (reached through
a cuttable TCP proxy) is unreachable for 20 s once (a quarter of the run for short runs).
Then the simulator pauses and every WS delta, snapshot, trade and ticker it sent is compared
row by row with the database (every ticker message one by one too); every live book with the
true book. Prints the counts: kills, disconnects, seq skips, rows sent / stored / lost /
duplicated, whether the supervisor gave up, and every excused count with its bound
(tests/e2e/proof.py): rows in flight inside a killed connector (Kalshi does not replay them)
only if the simulator sent them at most ``--in-flight-ms`` before the kill; deltas the connector
drops by design while a market waits for its post-gap snapshot only if that snapshot came at
most ``--resync-s`` later. Anything else missing is lost.
Exit status 1 when anything was lost, duplicated or a book differs.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e import chaos  # noqa: E402
from tests.e2e.harness import System, drop_pg_schema, pg_db, sent_frames, sim_at  # noqa: E402
from tests.e2e.proof import Bounds, settle  # noqa: E402
from tests.support.pg import PG_URL  # noqa: E402
from tests.support.tcpproxy import TcpProxy  # noqa: E402


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up the system on SIGTERM too
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=300.0)
    ap.add_argument("--msgs", type=float, default=5000.0, help="target simulator messages/s")
    ap.add_argument("--markets", type=int, default=60)
    ap.add_argument("--pg", default=PG_URL)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", type=Path, help="also write the counts here")
    ap.add_argument("--in-flight-ms", type=float, default=Bounds.in_flight_ms, help="in-flight excuse bound")
    ap.add_argument("--resync-s", type=float, default=Bounds.resync_s, help="post-gap snapshot excuse bound")
    args = ap.parse_args()

    url = make_url(args.pg)
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    db = pg_db(url.set(port=proxy.port).render_as_string(hide_password=False))
    outage = min(20.0, args.seconds / 4)
    plan = chaos.Plan(
        seconds=args.seconds,
        min_skips=2,  # the second on the trade channel
        pg_outage=(args.seconds / 3, outage),
        seed=args.seed,
    )
    tmp = Path(tempfile.mkdtemp(prefix="kxfeed-chaos-"))
    system = System(
        tmp,
        db=db,
        # every frame kept: the comparison is row by row over the whole run
        sim=sim_at(args.msgs, args.markets, truth_max_frames=int(args.msgs * (args.seconds + 60) * 1.5)),
    )
    try:
        system.start()
        frames0, t0 = sent_frames(system), time.monotonic()
        out = chaos.run(system, plan, proxy)
        elapsed = time.monotonic() - t0
        gave_up = system.proc is None or system.proc.poll() is not None
        frames = sent_frames(system) - frames0
        bounds = Bounds(in_flight_ms=args.in_flight_ms, resync_s=args.resync_s)
        result = settle(system, timeout=120.0, killed=out.killed_conns, bounds=bounds)
        states = system.states()
        restarts = {n: w.get("restarts", 0) for n, w in system.workers().items()}
        code = system.stop(120)
    finally:
        system.kill()
        proxy.close()
        drop_pg_schema(args.pg, db["schema"])
    gave_up = gave_up or any("intensity exceeded" in str(r.get("msg")) for r in system.log_records())
    sent = sum(d["sent"] for d in result.diff.values())
    counts = {
        "seconds": round(elapsed, 1),
        "sim_msgs_per_s": round(frames / elapsed) if elapsed else 0,
        "truth_truncated": result.info["truncated"],
        "kills": dict(out.kills),
        "disconnects": out.disconnects,
        "seq_skips": out.seq_skips,
        "pg_outage_s": out.pg_outage_s,
        "rows": result.summary(),
        "sent": sent,
        "lost": result.lost(),
        "duplicated_or_wrong": result.duplicated_or_foreign(),
        "excused": {name: {"rows": n, "bound": bound} for name, n, bound in result.excuses()},
        "tickers_without_a_row": result.tickers_not_stored(),
        "killed_older_than_in_flight_bound": sum(
            len(d.get("killed_older_than_bound", [])) for d in result.diff.values()
        ),
        "recovering_too_late": len(result.diff["delta"].get("recovering_too_late", [])),
        "books_mismatched": len(result.books),
        "restarts": restarts,
        "all_running_after": set(states.values()) == {"running"},
        "supervisor_gave_up": gave_up,
        "supervisor_exit": code,
        "driver_errors": out.errors,
    }
    print("counts: " + json.dumps(counts))
    # A truncated truth cannot prove anything: raise the simulator's truth_max_frames.
    ok = not (
        counts["lost"]
        or counts["duplicated_or_wrong"]
        or result.books
        or gave_up
        or counts["truth_truncated"]
    )
    print(
        f"chaos {elapsed:.0f}s at {counts['sim_msgs_per_s']:,} msgs/s: kills {sum(out.kills.values())}, "
        f"disconnects {out.disconnects}, "
        f"seq skips {out.seq_skips} ({out.trade_skips} on the trade channel), "
        f"PostgreSQL outage {out.pg_outage_s:.0f}s | rows sent {sent:,}, "
        f"lost {counts['lost']} (tickers without a row {result.tickers_not_stored()}), duplicated/wrong "
        f"{counts['duplicated_or_wrong']}, books mismatched {len(result.books)}, supervisor gave up: "
        f"{gave_up}  -> {'OK' if ok else 'FAILED'}"
    )
    for name, n, bound in result.excuses():
        print(f"  excused, {name}: {n:,} rows, bound: {bound}")
    print(
        f"  trades made while no connection carried them: {result.info['trade_off_connection']:,}, "
        f"not backfilled from REST by the end (lost): {result.off_connection():,}"
    )
    print("reference (issue 10): nothing lost, nothing duplicated, all books equal the truth, no give-up")
    if args.json:
        args.json.write_text(json.dumps(counts, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
