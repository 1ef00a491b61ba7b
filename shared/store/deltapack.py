"""Book deltas packed in runs: the one codec every writer and reader of ``book_deltas`` uses.

A stored row of ``book_deltas`` is a *run*: consecutive deltas of one subscription (conn,
sid) from one writer batch, in xseq order, at most :data:`MAX_RUN` of them, spanning at most
:data:`MAX_SPAN` seqs and one UTC day of receive time. A row per delta cannot be small in
PostgreSQL (24 B tuple header + line pointer + a unique btree entry per delta, ~60 B before
any data); a run pays them once.

The body is columnar: a header (format byte, delta count), then per column (xseq, market id,
side 0 = yes / 1 = no, price, delta, ts, recv) its width in bytes (1, 2, 4 or 8, signed
little-endian) and a base, then each column's values minus its base in that width (a run's
xseqs are stored as offsets from the first, its times from the earliest). Widths are chosen
per run from the values, so every Int64 a message may carry is stored exactly (a value past
int64 is an OverflowError: a refused value, never a truncated one), and the common case
(prices below 32,768, deltas of a few thousand contracts, times within seconds of each
other) costs 1-4 bytes a column.

:func:`decode` is the one unpacking function (readers either materialise its sections as
Python ints, :func:`columns`, or hand them to Arrow as buffers).
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Callable, Sequence
from itertools import islice, repeat
from operator import itemgetter, lt, sub
from typing import Any, NamedTuple

#: Most deltas in one run (bounds a read's unit of work, and an export's overlap buffer).
MAX_RUN = 8192
#: Largest ``last_xseq - first_xseq`` of a run: a lookup of the runs that may hold a seq then
#: scans a bounded range of the (conn, sid, first_xseq) index.
MAX_SPAN = 1 << 20
DAY_US = 86_400 * 1_000_000
INT64_MAX = 2**63 - 1

COLUMNS = ("xseq", "market", "side", "price", "delta", "ts", "recv")
_FORMAT = 1
_HEAD = struct.Struct("<BI")
_COL = struct.Struct("<Bq")
_CODES = {1: "b", 2: "h", 4: "i", 8: "q"}
_LIMITS = (
    (1, -(2**7), 2**7 - 1),
    (2, -(2**15), 2**15 - 1),
    (4, -(2**31), 2**31 - 1),
    (8, -(2**63), INT64_MAX),
)
SIDES = ("yes", "no")
SIDE_CODE = {"yes": 0, "no": 1}

for _w, _c in _CODES.items():  # the array module's sizes are the platform's: check them once
    if array(_c).itemsize != _w or struct.calcsize(f"<{_c}") != _w:
        raise ImportError(f"typecode {_c!r} is not {_w} bytes on this platform")
_LITTLE = sys.byteorder == "little"


class Section(NamedTuple):
    """One column of a run: ``n`` signed integers of ``width`` bytes at ``offset`` of the
    body, each plus ``base``."""

    width: int
    base: int
    offset: int


class Decoded(NamedTuple):
    n: int
    sections: dict[str, Section]


class Run(NamedTuple):
    """One ``book_deltas`` row: the table's columns in order (times as integer us)."""

    conn: int
    sid: int
    first_xseq: int
    last_xseq: int
    n: int
    ts_lo: int
    ts_hi: int
    recv_lo: int
    body: bytes


def _width(lo: int, hi: int) -> int:
    for w, a, b in _LIMITS:
        if a <= lo and hi <= b:
            return w
    raise OverflowError(f"value {hi if hi > INT64_MAX else lo} does not fit a signed 64-bit integer")


def encode(cols: Sequence[Sequence[int] | bytes], bounds: Sequence[tuple[int, int] | None] = ()) -> bytes:
    """The body of a run from its :data:`COLUMNS`, equal lengths; ``bounds``: a column's
    (min, max) when the caller knows it, or a bound of every value with min 0 (else they are
    computed). A ``bytes`` column is values 0..127, one byte each."""
    n = len(cols[0])
    head = [_HEAD.pack(_FORMAT, n)]
    data: list[bytes] = []
    for i, vals in enumerate(cols):
        known = bounds[i] if i < len(bounds) else None
        lo, hi = known if known is not None else (min(vals), max(vals))
        _width(lo, hi)  # every value an int64 (else OverflowError: the value is refused)
        # A base narrows a column of close values (times, seqs); a spread wider than int64
        # (a value near each end) is stored as it is.
        base = lo if lo != 0 and hi - lo <= INT64_MAX else 0
        w = _width(lo - base, hi - base)
        head.append(_COL.pack(w, base))
        if isinstance(vals, bytes) and w == 1 and base == 0:
            data.append(vals)
            continue
        fmt = f"<{n}{_CODES[w]}"
        data.append(struct.pack(fmt, *vals) if base == 0 else struct.pack(fmt, *map(sub, vals, repeat(base))))
    return b"".join(head + data)


def decode(body: bytes | memoryview) -> Decoded:
    """The sections of a run's body (checked against its length: a body that is not one is a
    ValueError, never a misread)."""
    if len(body) < _HEAD.size:
        raise ValueError("book_deltas body: too short")
    fmt, n = _HEAD.unpack_from(body, 0)
    if fmt != _FORMAT:
        raise ValueError(f"book_deltas body: unknown format {fmt}")
    pos = _HEAD.size
    specs = []
    for _ in COLUMNS:
        if pos + _COL.size > len(body):
            raise ValueError("book_deltas body: truncated header")
        w, base = _COL.unpack_from(body, pos)
        if w not in _CODES:
            raise ValueError(f"book_deltas body: width {w}")
        specs.append((w, base))
        pos += _COL.size
    sections = {}
    for name, (w, base) in zip(COLUMNS, specs, strict=True):
        sections[name] = Section(w, base, pos)
        pos += w * n
    if pos != len(body):
        raise ValueError(f"book_deltas body: {len(body)} bytes, its header says {pos}")
    return Decoded(n, sections)


def column(body: bytes | memoryview, d: Decoded, name: str) -> list[int]:
    """One decoded column as Python ints."""
    s = d.sections[name]
    arr = array(_CODES[s.width])
    arr.frombytes(body[s.offset : s.offset + s.width * d.n])
    if not _LITTLE:
        arr.byteswap()
    if s.base == 0:
        return arr.tolist()
    base = s.base
    return [v + base for v in arr]


def columns(body: bytes | memoryview) -> dict[str, list[int]]:
    """Every column of a run as Python ints."""
    d = decode(body)
    return {name: column(body, d, name) for name in COLUMNS}


# ---- building runs (the writer, the migration) -------------------------------------------------

#: A delta as the writer's DeltaRow: (conn, sid, xseq, ticker, side, price, delta, ts, recv).
DeltaTuple = tuple[Any, ...]


def split(rows: Sequence[DeltaTuple]) -> list[list[DeltaTuple]]:
    """``rows`` (DeltaRow tuples, xseqs distinct per subscription) cut into the parts that
    make runs: grouped by subscription, sorted by xseq, cut at :data:`MAX_RUN`,
    :data:`MAX_SPAN` and UTC days of receive time."""
    out: list[list[DeltaTuple]] = []
    for part in by_subscription(rows).values():
        xs = [r[2] for r in part]
        if xs != sorted(xs):
            part = sorted(part, key=_XSEQ)
        for start in range(0, len(part), MAX_RUN):
            out += _cut(part[start : start + MAX_RUN])
    return out


_XSEQ = itemgetter(2)
_SUBSCRIPTION = itemgetter(0, 1)


def by_subscription(rows: Sequence[DeltaTuple]) -> dict[tuple[int, int], list[DeltaTuple]]:
    """``rows`` by (conn, sid), each in arrival order (a batch is most often of one)."""
    if not rows:
        return {}
    head = rows[0]
    if len(set(map(_SUBSCRIPTION, rows))) == 1:  # in C: a batch's rows are many
        return {(head[0], head[1]): list(rows)}
    groups: dict[tuple[int, int], list[DeltaTuple]] = {}
    for r in rows:
        groups.setdefault((r[0], r[1]), []).append(r)
    return groups


def _cut(part: list[DeltaTuple]) -> list[list[DeltaTuple]]:
    """A sorted part of at most MAX_RUN deltas, cut where the span or the day would break."""
    recv = [r[8] for r in part]
    if part[-1][2] - part[0][2] <= MAX_SPAN and min(recv) // DAY_US == max(recv) // DAY_US:
        return [part]  # the common case: one run
    out = []
    start, n = 0, len(part)
    while start < n:
        first, day = part[start][2], part[start][8] // DAY_US
        end = start + 1
        while end < n and part[end][2] - first <= MAX_SPAN and part[end][8] // DAY_US == day:
            end += 1
        out.append(part[start:end])
        start = end
    return out


def runs_of(rows: Sequence[DeltaTuple], market_id: Callable[[str], int]) -> list[Run]:
    """``rows`` as the runs that store them (:func:`split`, then :func:`run_of`)."""
    return [run_of(p, market_id) for p in split(rows)]


def run_of(part: Sequence[DeltaTuple], market_id: Callable[[str], int]) -> Run:
    """One part of :func:`split` as a run."""
    return run_of_columns(list(zip(*part, strict=True)), market_id)


def run_of_columns(
    cols: Sequence[Sequence[Any]],
    market_id: Callable[[str], int],
    recv_bounds: tuple[int, int] | None = None,
    top_id: int | None = None,
) -> Run:
    """A run from the columns of one part of :func:`split` (DeltaRow field order);
    ``top_id``: no market id above it (ids are positive)."""
    _, _, xseqs, tickers, sides, prices, deltas, ts, recv = cols
    markets = list(map(market_id, tickers))
    codes = bytes(map(SIDE_CODE.__getitem__, sides))
    ts_lo, ts_hi = min(ts), max(ts)
    recv_lo, recv_hi = recv_bounds if recv_bounds is not None else (min(recv), max(recv))
    body = encode(
        (xseqs, markets, codes, prices, deltas, ts, recv),
        (
            (xseqs[0], xseqs[-1]), None if top_id is None else (0, top_id), (0, 1), None, None,
            (ts_lo, ts_hi), (recv_lo, recv_hi),
        ),
    )  # fmt: skip
    return Run(cols[0][0], cols[1][0], xseqs[0], xseqs[-1], len(xseqs), ts_lo, ts_hi, recv_lo, body)


def one_run(cols: Sequence[Sequence[Any]]) -> tuple[int, int] | None:
    """The (min, max) receive time of a batch's deltas (as columns) when they make exactly one
    run as they are: one subscription, xseqs rising, within MAX_RUN, MAX_SPAN and one day."""
    conns, sids, xs, recv = cols[0], cols[1], cols[2], cols[8]
    n = len(xs)
    if n > MAX_RUN or xs[-1] - xs[0] > MAX_SPAN or conns.count(conns[0]) != n or sids.count(sids[0]) != n:
        return None
    lo, hi = min(recv), max(recv)
    if lo // DAY_US != hi // DAY_US or not all(map(lt, xs, islice(xs, 1, None))):
        return None  # another day, or xseqs not strictly rising (out of order or repeated)
    return lo, hi


_ROW_ORDER = ("xseq", "market", "side", "price", "delta", "ts", "recv")


def rows_of(run: Sequence[Any], tickers: Callable[[int], str]) -> list[DeltaTuple]:
    """A stored run (its row: conn, sid, first_xseq, ..., body last) back as DeltaRow tuples."""
    c, sid, body = run[0], run[1], run[-1]
    cols = columns(body)
    sides = SIDES
    return [
        (c, sid, x, tickers(m), sides[s], p, d, t, r)
        for x, m, s, p, d, t, r in zip(*(cols[k] for k in _ROW_ORDER), strict=True)
    ]  # fmt: skip
