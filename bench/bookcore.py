"""The book core against a C sorted-book extension, on the same delta stream in the same run.

  .venv/bin/python bench/bookcore.py [--markets 5000] [--deltas 300000] [--levels 15]

The reference is ``order-book`` from PyPI (``order_book.OrderBook``: a C SortedDict per side,
the book cryptofeed keeps); install it with ``.venv/bin/pip install -e '.[bench]'``. Both sides
get bench/orderbook.py's streams (uniform and Zipf over the markets), decoded before the clock
starts, applied market by market after each market's snapshot:

- kxfeed core: ``Builder.apply_many`` over chunks of 5,000 (what the orderbook worker runs per
  bus read). It checks sequence, tick and crossing, keeps the level hash, and keeps the best
  bid of each side as it goes, so the top of book is current after every delta.
- kxfeed core, top read after every delta: ``Builder.apply`` per delta and ``MarketBook.top()``
  right after it (a caller that must see every top).
- C reference: per delta the size at the price read, changed, set or deleted in the SortedDict of
  its side (YES bids; NO bids stored as YES asks, $1 - price, as Kalshi's ask ladder), then the
  top read (``bids.index(0)``, ``asks.index(0)``) - its only way to know the top; and once
  without the top read, printed beside it.

Target (issue 21, 5): the core >= 0.8x the C reference; the top-after-every-delta figure is the
regression guard (no slower than the last run in bench/RESULTS.md). Best of 3 runs each, taken
turn about.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import orderbook as ob_bench  # noqa: E402  (bench/orderbook.py: the streams)

from shared.book.builder import Builder  # noqa: E402
from shared.messages import BATCH_DECODER, BATCH_ENCODER, BookDelta  # noqa: E402
from shared.units import ONE_DOLLAR  # noqa: E402

CHUNK = 5000
TARGET = 0.8
Books = dict[str, tuple[dict[int, int], dict[int, int]]]


def loaded_builder(books: Books) -> Builder:
    b = Builder()
    b.apply_many(ob_bench.metas(list(books)), 0.0)
    b.apply_many(BATCH_DECODER.decode(BATCH_ENCODER.encode(ob_bench.snapshots(books))), 0.0)
    return b


def core_batched(books: Books, chunks: list[list[Any]]) -> float:
    b = loaded_builder(books)
    t0 = time.perf_counter()
    for msgs in chunks:
        b.apply_many(msgs, 1.0)
    spent = time.perf_counter() - t0
    assert not b.invalid, b.counts
    return spent


def core_top_each(books: Books, chunks: list[list[Any]]) -> float:
    b = loaded_builder(books)
    apply, by_ticker = b.apply, b.books
    t0 = time.perf_counter()
    for msgs in chunks:
        for m in msgs:
            apply(m, 1.0)
            by_ticker[m.ticker].top()
    spent = time.perf_counter() - t0
    assert not b.invalid, b.counts
    return spent


def c_reference(books: Books, chunks: list[list[Any]], top: bool = True) -> float:
    from order_book import OrderBook

    obs: dict[str, Any] = {}
    for t, (yes, no) in books.items():
        ob = OrderBook()
        for p, s in yes.items():
            ob.bids[p] = s
        for p, s in no.items():
            ob.asks[ONE_DOLLAR - p] = s
        obs[t] = ob
    t0 = time.perf_counter()
    for msgs in chunks:
        for m in msgs:
            ob = obs[m.ticker]
            if m.side == "yes":
                levels, p = ob.bids, m.price
            else:
                levels, p = ob.asks, ONE_DOLLAR - m.price
            size = (levels[p] if p in levels else 0) + m.delta  # noqa: SIM401 - a SortedDict has no get
            if size:
                levels[p] = size
            else:
                del levels[p]
            if top:
                if len(ob.bids):
                    ob.bids.index(0)
                if len(ob.asks):
                    ob.asks.index(0)
    return time.perf_counter() - t0


def best_of(runs: int, fns: dict[str, Callable[[], float]]) -> dict[str, float]:
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(runs):
        for name, fn in fns.items():
            best[name] = min(best[name], fn())
    return best


def compare(books: Books, deltas: list[BookDelta], label: str) -> float:
    chunks = [
        BATCH_DECODER.decode(BATCH_ENCODER.encode(deltas[i : i + CHUNK]))
        for i in range(0, len(deltas), CHUNK)
    ]
    spent = best_of(
        3,
        {
            "core": lambda: core_batched(books, chunks),
            "top": lambda: core_top_each(books, chunks),
            "c": lambda: c_reference(books, chunks),
            "c_bare": lambda: c_reference(books, chunks, top=False),
        },
    )
    n = len(deltas)
    core, top, c, c_bare = (n / spent[k] for k in ("core", "top", "c", "c_bare"))
    ratio = core / c
    print(f"{label}:")
    print(f"  C reference (order-book SortedDict, top read per delta) {c:>12,.0f} deltas/s  (the limit)")
    print(f"  C reference, no top read (for comparison)               {c_bare:>12,.0f} deltas/s")
    print(f"  kxfeed core (apply_many, top kept per delta)            {core:>12,.0f} deltas/s")
    print(f"  kxfeed core, apply + top() after every delta            {top:>12,.0f} deltas/s")
    verdict = "MET" if ratio >= TARGET else "NOT MET"
    print(f"  core / C reference = {ratio:.2f}x  (target >= {TARGET}x: {verdict})")
    print(f"  core / C reference without its top reads = {core / c_bare:.2f}x")
    return ratio


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--markets", type=int, default=5000)
    ap.add_argument("--deltas", type=int, default=300_000)
    ap.add_argument("--levels", type=int, default=15)
    args = ap.parse_args()
    try:
        import order_book  # noqa: F401
    except ImportError:
        print("bench/bookcore.py needs the reference: .venv/bin/pip install -e '.[bench]'", file=sys.stderr)
        return 2
    rng = random.Random(5)
    books = ob_bench.market_books(args.markets, args.levels, rng)
    print(f"{args.markets} markets, {args.levels} levels a side, {args.deltas:,} deltas, best of 3")
    ratios = [
        compare(books, ob_bench.delta_stream(books, args.deltas, rng, zipf=False), "uniform over markets"),
        compare(books, ob_bench.delta_stream(books, args.deltas, rng, zipf=True), "Zipf over markets"),
    ]
    worst = min(ratios)
    verdict = "MET" if worst >= TARGET else "NOT MET"
    print(f"book core vs C sorted book: worst {worst:.2f}x (target >= {TARGET}x: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
