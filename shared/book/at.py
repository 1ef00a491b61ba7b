"""A market's book as it was at a moment, rebuilt from the store through the live book core.

:func:`book_at` takes the newest sequenced (WebSocket) snapshot of the market with ts <= the
moment and the deltas stored after it on its subscription up to the moment, and feeds them,
as the bus messages they were stored from, to :class:`shared.book.builder.Builder`: the one
core the orderbook worker runs, so a delta that would make the live book INVALID (a negative
level, a crossed book, a price off the market's ladder) makes this one INVALID with the same
reason. A hole in the subscription's stored sequence numbers between the snapshot and the
last delta applied (a delta of any market of the subscription, or a snapshot, never stored)
makes the book INVALID ("gap"): it may have missed a change. :func:`rebuild` is the pure part.

Redundant collectors store a line each (their own conn): the newest snapshot's line is rebuilt
first; when it is INVALID at the moment, or another line stored changes of the market after its
last one (the collector that went quiet died), the newest snapshot of each of the other recent
lines (:data:`LINES` in all) is rebuilt too, and the VALID book with the newest change wins; with
none VALID, the newest snapshot's INVALID book is the answer.

Used by ``kxfeed book TICKER --at TIME`` and the gateway's ``book?at=``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.book.book import NO, YES
from shared.book.builder import Builder
from shared.messages import BookDelta, BookSnapshot, Level, PriceRange
from shared.store import deltaread, history
from shared.store.schema import book_snapshots
from shared.store.types import datetime_to_us, us_to_datetime
from shared.units import ONE_DOLLAR

_RANGES = msgspec.json.Decoder(list[PriceRange])
_LEVELS = msgspec.json.Decoder(list[tuple[int, int]])


@dataclass
class BookAt:
    """The rebuilt book. ``found`` False: no sequenced snapshot of the market at or before the
    moment (nothing to rebuild from; ``reason`` "no_snapshot"). Levels best first, prices in
    $0.0001, sizes in hundredths; ``hash`` is the level hash the live orderbook keeps."""

    ticker: str
    at_us: int
    found: bool
    valid: bool
    reason: str
    conn: int = 0
    sid: int = 0
    snapshot_xseq: int = 0
    snapshot_ts_us: int = 0
    xseq: int = 0  # the last sequence number applied
    ts_us: int = 0  # the time of the last snapshot or delta applied
    deltas: int = 0
    yes: list[Level] = field(default_factory=list)
    no: list[Level] = field(default_factory=list)
    hash: int = 0
    market_id: str = ""
    tick_checked: bool = False

    def answer(self, depth: int = 0) -> dict[str, Any]:
        """The live orderbook's ``book`` answer shape (``kxfeed book``'s renderer and the
        gateway read it), and what the moment's book was rebuilt from. ``depth`` 0: every level."""
        n = depth or None
        top = None
        if self.valid:
            (yb, ys), (nb, ns) = (self.yes[0] if self.yes else (0, 0)), (self.no[0] if self.no else (0, 0))
            both = bool(yb and nb)
            top = {
                "yes_bid": yb or None, "yes_bid_size": ys, "yes_ask": ONE_DOLLAR - nb if nb else None,
                "yes_ask_size": ns, "no_bid": nb or None, "no_ask": ONE_DOLLAR - yb if yb else None,
                "mid_x2": yb + ONE_DOLLAR - nb if both else None,
                "spread": ONE_DOLLAR - nb - yb if both else None,
            }  # fmt: skip
        return {
            "ticker": self.ticker, "market_id": self.market_id, "valid": self.valid, "reason": self.reason,
            "conn": self.conn, "sid": self.sid, "xseq": self.xseq,
            "hash": f"{self.hash & 0xFFFFFFFFFFFFFFFF:016x}",
            "age_s": round((self.at_us - self.ts_us) / 1e6, 3) if self.found else None,
            "tick_checked": self.tick_checked, "levels": {"yes": len(self.yes), "no": len(self.no)},
            "yes": self.yes[:n], "no": self.no[:n], "top": top,
            "at": us_iso(self.at_us), "found": self.found, "snapshot_xseq": self.snapshot_xseq,
            "snapshot_ts": us_iso(self.snapshot_ts_us) if self.found else None,
            "ts": us_iso(self.ts_us) if self.found else None, "deltas": self.deltas,
        }  # fmt: skip


def us_iso(us: int) -> str:
    return us_to_datetime(us).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _ladder(ranges_json: str | None) -> list[PriceRange] | None:
    if not ranges_json:
        return None
    try:
        return _RANGES.decode(ranges_json)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None  # unreadable: no tick check, as the live builder does without a ladder


async def rebuild(
    snap: history.StoredSnapshot,
    deltas: AsyncIterator[Sequence[Sequence[Any]]] | Iterable[Sequence[Sequence[Any]]],
    ranges: list[PriceRange] | None,
    at_us: int,
) -> tuple[BookAt, Builder]:
    """``snap`` then the (xseq, side, price, delta, ts us) rows of ``deltas`` through a fresh
    Builder; the book it ends with, and the builder (its ``counts`` say what it ignored)."""
    b = Builder()
    t = snap.ticker
    if ranges:
        b.set_ladder(t, ranges)
    b.apply(
        BookSnapshot(
            ticker=t, market_id=snap.market_id, conn=snap.conn, sid=snap.sid, xseq=snap.xseq,
            yes=snap.yes, no=snap.no, ts_exch=snap.ts_us // 1000, ts_recv=snap.recv_us * 1000,
        ),
        0.0,
    )  # fmt: skip
    out = BookAt(t, at_us, True, False, "", snap.conn, snap.sid, snap.xseq, snap.ts_us, snap.xseq, snap.ts_us)
    out.market_id, out.tick_checked = snap.market_id, bool(ranges)

    def messages(rows: Sequence[Sequence[Any]]) -> list[BookDelta]:
        msgs = []
        for xseq, side, price, delta, ts in rows:
            msgs.append(
                BookDelta(
                    ticker=t, market_id=snap.market_id, conn=snap.conn, sid=snap.sid, xseq=xseq, side=side,
                    price=price, delta=delta, ts_exch=ts // 1000,
                )
            )  # fmt: skip
            out.xseq, out.ts_us = xseq, ts
            out.deltas += 1
        return msgs

    if isinstance(deltas, AsyncIterator):
        async for rows in deltas:
            b.apply_many(messages(rows), 0.0)
    else:
        for rows in deltas:
            b.apply_many(messages(rows), 0.0)
    book = b.books[t]
    out.valid, out.reason = book.valid, book.reason
    out.yes, out.no, out.hash = book.levels(YES), book.levels(NO), book.hash
    return out, b


#: Connections (lines, or one line's successive connections) whose snapshots a moment may use.
LINES = 3


async def book_at(engine: AsyncEngine, ticker: str, at: datetime) -> BookAt:
    """``ticker``'s book at ``at`` (aware), as stored."""
    at_us = datetime_to_us(at)
    async with engine.connect() as conn:
        snap = await history.snapshot_before(conn, ticker, at)
        if snap is None:
            return BookAt(ticker, at_us, False, False, "no_snapshot")
        ranges = _ladder(await history.price_ranges(conn, ticker))
        first = await _checked(conn, snap, ranges, at, at_us)
        others = await _other_lines(conn, snap, at)
        if not others or (first.valid and not await _newer_on(conn, others, ticker, first.ts_us, at_us)):
            return first
        best = first if first.valid else None
        for other in others:
            out = await _checked(conn, other, ranges, at, at_us)
            if out.valid and (best is None or out.ts_us > best.ts_us):
                best = out
    return best or first


async def _checked(
    conn: AsyncConnection,
    snap: history.StoredSnapshot,
    ranges: list[PriceRange] | None,
    at: datetime,
    at_us: int,
) -> BookAt:
    """``snap``'s line rebuilt to ``at``, INVALID ("gap") when its stored seqs have a hole."""
    out, _ = await rebuild(snap, history.deltas_after(conn, snap, at), ranges, at_us)
    if out.valid and out.xseq > snap.xseq:
        span = out.xseq - snap.xseq
        stored = await history.stored_seqs(conn, snap.conn, snap.sid, snap.xseq + 1, out.xseq)
        if stored < span:
            out.valid, out.reason = False, "gap"
    return out


async def _other_lines(
    conn: AsyncConnection, snap: history.StoredSnapshot, at: datetime
) -> list[history.StoredSnapshot]:
    """The newest WS snapshot of the market at or before ``at`` on each other recent connection."""
    s = book_snapshots.c
    where = (s.ticker == snap.ticker, s.xseq > 0, s.ts <= at, s.conn != snap.conn)
    newest = (
        select(s.conn, func.max(s.ts))
        .where(*where)
        .group_by(s.conn)
        .order_by(func.max(s.ts).desc())
        .limit(LINES - 1)
    )
    out = []
    for c, _ in (await conn.execute(newest)).all():
        row = (
            await conn.execute(
                select(s.market_id, s.sid, s.xseq, s.yes, s.no, s.ts, s.recv)
                .where(*where[:3], s.conn == c)
                .order_by(s.ts.desc(), s.recv.desc(), s.xseq.desc())
                .limit(1)
            )
        ).first()
        if row is not None:
            mid, sid, xseq, yes, no, ts, recv = row
            out.append(
                history.StoredSnapshot(
                    snap.ticker, mid, c, sid, xseq, _LEVELS.decode(yes), _LEVELS.decode(no),
                    datetime_to_us(ts), datetime_to_us(recv),
                )
            )  # fmt: skip
    return out


async def _newer_on(
    conn: AsyncConnection, others: list[history.StoredSnapshot], ticker: str, after_us: int, at_us: int
) -> bool:
    """Another line stored a change of ``ticker`` after ``after_us`` (up to the moment)."""
    for o in others:
        if o.ts_us > after_us:
            return True
        f = deltaread.DeltaFilter(
            conn=o.conn, sid=o.sid, tickers=frozenset({ticker}), ts_since=after_us + 1, ts_max=at_us
        )
        if await deltaread.count(conn, f):
            return True
    return False
