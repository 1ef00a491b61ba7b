"""Book deltas packed in runs: the one codec every writer and reader of ``book_deltas`` uses.

A stored row of ``book_deltas`` is a *run*: consecutive deltas of one subscription (conn,
sid) from one writer batch, in xseq order, at most :data:`MAX_RUN` of them, spanning at most
:data:`MAX_SPAN` seqs and one UTC day of receive time. A row per delta cannot be small in
PostgreSQL (24 B tuple header + line pointer + a unique btree entry per delta, ~60 B before
any data); a run pays them once.

The body is columnar: a header (format byte, delta count), then per column (xseq offset from
the run's first xseq, market id, side 0 = yes / 1 = no, price, delta, ts, recv) its width in
bytes (1, 2, 4 or 8, signed little-endian) and a base, then each column's values minus its base
in that width. Widths are chosen per run from the values, so every Int64 a message may carry
is stored exactly (a value past int64 is an OverflowError: a refused value, never a truncated
one), and the common case (prices below 32,768, deltas of a few thousand contracts, times
within seconds of each other) costs 1-4 bytes a column.

:func:`decode` is the one unpacking function (readers either materialise its sections as
Python ints, :func:`columns`, or hand them to Arrow as buffers).
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

#: Most deltas in one run (bounds a read's unit of work, and an export's overlap buffer).
MAX_RUN = 8192
#: Largest ``last_xseq - first_xseq`` of a run: a lookup of the runs that may hold a seq then
#: scans a bounded range of the (conn, sid, first_xseq) index.
MAX_SPAN = 1 << 20
DAY_US = 86_400 * 1_000_000
INT64_MAX = 2**63 - 1

COLUMNS = ("xoff", "market", "side", "price", "delta", "ts", "recv")
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
    if array(_c).itemsize != _w:
        raise ImportError(f"array typecode {_c!r} is not {_w} bytes on this platform")
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


def encode(cols: Sequence[Sequence[int]]) -> bytes:
    """The body of a run from its :data:`COLUMNS` (xseq offsets first), equal lengths."""
    n = len(cols[0])
    head = [_HEAD.pack(_FORMAT, n)]
    data: list[bytes] = []
    for vals in cols:
        lo, hi = min(vals), max(vals)
        _width(lo, hi)  # every value an int64 (else OverflowError: the value is refused)
        # A base narrows a column of close values (times, seqs); a spread wider than int64
        # (a value near each end) is stored as it is.
        base = lo if lo != 0 and hi - lo <= INT64_MAX else 0
        w = _width(lo - base, hi - base)
        head.append(_COL.pack(w, base))
        arr = array(_CODES[w], vals if base == 0 else [v - base for v in vals])
        if not _LITTLE:
            arr.byteswap()
        data.append(arr.tobytes())
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


def columns(body: bytes | memoryview, first_xseq: int) -> dict[str, list[int]]:
    """Every column of a run as Python ints; ``xseq`` replaces the offsets."""
    d = decode(body)
    out = {name: column(body, d, name) for name in COLUMNS}
    offs = out.pop("xoff")
    out["xseq"] = [first_xseq + o for o in offs]
    return out


# ---- building runs (the writer, the migration) -------------------------------------------------

#: A delta as the writer's DeltaRow: (conn, sid, xseq, ticker, side, price, delta, ts, recv).
DeltaTuple = tuple[Any, ...]


def split(rows: Sequence[DeltaTuple]) -> list[list[DeltaTuple]]:
    """``rows`` (DeltaRow tuples, xseqs distinct per subscription) cut into the parts that
    make runs: grouped by subscription, sorted by xseq, cut at :data:`MAX_RUN`,
    :data:`MAX_SPAN` and UTC days of receive time."""
    by_sub: dict[tuple[int, int], list[DeltaTuple]] = {}
    for r in rows:
        by_sub.setdefault((r[0], r[1]), []).append(r)
    out: list[list[DeltaTuple]] = []
    for part in by_sub.values():
        if any(part[i][2] >= part[i + 1][2] for i in range(len(part) - 1)):
            part.sort(key=lambda r: r[2])
        start = 0
        n = len(part)
        while start < n:
            first = part[start][2]
            day = part[start][8] // DAY_US
            end = start + 1
            limit = min(n, start + MAX_RUN)
            while end < limit and part[end][2] - first <= MAX_SPAN and part[end][8] // DAY_US == day:
                end += 1
            out.append(part[start:end])
            start = end
    return out


def runs_of(rows: Sequence[DeltaTuple], market_id: Callable[[str], int]) -> list[Run]:
    """``rows`` as the runs that store them (:func:`split`, then :func:`run_of`)."""
    return [run_of(p, market_id) for p in split(rows)]


def run_of(part: Sequence[DeltaTuple], market_id: Callable[[str], int]) -> Run:
    """One part of :func:`split` as a run."""
    c, sid = part[0][0], part[0][1]
    _, _, xseqs, tickers, sides, prices, deltas, ts, recv = zip(*part, strict=True)
    first = xseqs[0]
    code = SIDE_CODE
    body = encode(
        (
            [x - first for x in xseqs],
            [market_id(t) for t in tickers],
            [code[s] for s in sides],
            prices,
            deltas,
            ts,
            recv,
        )
    )
    return Run(c, sid, first, xseqs[-1], len(part), min(ts), max(ts), min(recv), body)


_ROW_ORDER = ("xseq", "market", "side", "price", "delta", "ts", "recv")


def rows_of(run: Sequence[Any], tickers: Callable[[int], str]) -> list[DeltaTuple]:
    """A stored run (its row: conn, sid, first_xseq, ..., body last) back as DeltaRow tuples."""
    c, sid, first, body = run[0], run[1], run[2], run[-1]
    cols = columns(body, first)
    sides = SIDES
    return [
        (c, sid, x, tickers(m), sides[s], p, d, t, r)
        for x, m, s, p, d, t, r in zip(*(cols[k] for k in _ROW_ORDER), strict=True)
    ]  # fmt: skip
