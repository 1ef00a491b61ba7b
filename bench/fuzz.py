"""Hostile WebSocket frames through the connector's decode -> parse -> bus encode path.

  python bench/fuzz.py [--frames N] [--seed S] [--batch B]

Generates N frames (default 1,000,000) by mutating a corpus of valid Kalshi frames of every
type (tests/fixtures/kalshi): a field set to a hostile JSON value (numbers past int64, deep
nesting, malformed decimals...), a field removed or added, the type swapped, or the bytes cut
and flipped; about a fifth stay valid so books and sequences stay alive. Each batch goes
through a live connector Session, and what it publishes is bus-encoded and decoded again
(tests/support/frames.Pipeline). Prints how many frames were accepted, rejected by reason
(kxfeed_ws_bad_frames_total, unknown types) and how many raised; exits 1 if any raised.
"""

from __future__ import annotations

import argparse
import collections
import logging
import multiprocessing as mp
import sys
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.frames import Mutator, Pipeline, counter_by_label, counter_total, load_corpus


def run(frames: int, seed: int, batch: int) -> dict[str, Any]:
    """Fuzz ``frames`` frames in this process; counts of what happened to them."""
    # The connector samples every bad frame into its log (a few lines per 5 s per reason);
    # a million of them would bury the figures.
    logging.getLogger("kxfeed").setLevel(logging.ERROR)
    corpus = load_corpus()
    pipe = Pipeline(corpus)
    gen = Mutator(pipe, seed)
    bad0 = counter_by_label("kxfeed_ws_bad_frames_total", "reason")
    unknown0 = counter_total("kxfeed_ws_unknown_types_total")
    raised: collections.Counter[str] = collections.Counter()
    samples: dict[str, str] = {}
    published = 0
    done = 0
    while done < frames:
        chunk = [gen.frame() for _ in range(min(batch, frames - done))]
        try:
            pipe.feed(chunk)
        except Exception:
            # Find the frame(s) that raised, one at a time on fresh sessions.
            alone = 0
            for raw in chunk:
                probe = Pipeline(corpus)
                try:
                    probe.feed([raw])
                except Exception as exc:
                    alone += 1
                    kind = type(exc).__name__
                    raised[kind] += 1
                    samples.setdefault(kind, f"{raw[:300]!r}\n{traceback.format_exc(limit=4)}")
            if not alone:  # raised in context, not alone: still a failure
                raised["in-context"] += 1
                samples.setdefault("in-context", traceback.format_exc(limit=6))
            published += pipe.published
            pipe = Pipeline(corpus)
            gen.pipe = pipe
        done += len(chunk)
    bad1 = counter_by_label("kxfeed_ws_bad_frames_total", "reason")
    rejected = {r: int(bad1.get(r, 0) - bad0.get(r, 0)) for r in bad1}
    rejected["unknown_type"] = int(counter_total("kxfeed_ws_unknown_types_total") - unknown0)
    return {
        "frames": done,
        "rejected": rejected,
        "raised": dict(raised),
        "samples": samples,
        "published": published + pipe.published,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--procs", type=int, default=2, help="processes, each with its own seed")
    args = ap.parse_args()
    procs = max(1, args.procs)
    shares = [args.frames // procs + (i < args.frames % procs) for i in range(procs)]
    started = time.perf_counter()
    with mp.Pool(procs) as pool:
        results = pool.starmap(run, [(n, args.seed + i, args.batch) for i, n in enumerate(shares)])
    elapsed = time.perf_counter() - started

    done = sum(r["frames"] for r in results)
    rejected: collections.Counter[str] = collections.Counter()
    raised: collections.Counter[str] = collections.Counter()
    samples: dict[str, str] = {}
    for r in results:
        rejected.update(r["rejected"])
        raised.update(r["raised"])
        for k, v in r["samples"].items():
            samples.setdefault(k, v)
    # A frame is rejected once at most (a decoded frame that parse refuses counts as bad, and
    # is not published), so accepted = generated - rejected - raised.
    n_rejected = sum(rejected.values())
    n_raised = sum(raised.values())
    print(
        f"fuzz {done:,} frames in {elapsed:.1f} s on {procs} processes ({done / elapsed:,.0f} frames/s), "
        f"seeds {args.seed}..{args.seed + procs - 1}: accepted {done - n_rejected - n_raised:,}, "
        f"rejected {n_rejected:,}, raised {n_raised}  -> {'OK' if not n_raised else 'FAILED'}"
    )
    print("rejected by reason: " + ", ".join(f"{r} {n:,}" for r, n in sorted(rejected.items()) if n))
    print(f"messages published, bus-encoded and decoded back: {sum(r['published'] for r in results):,}")
    for kind, n in raised.items():
        print(f"RAISED {kind} x{n}: {samples.get(kind, '')}")
    print("reference (issue 14): 0 raised; every rejection counted by reason")
    return 1 if n_raised else 0


if __name__ == "__main__":
    sys.exit(main())
