"""The stored-sequence audit: holes per subscription in the database, and the recorded gaps.

Kalshi's seq is per subscription (connection, sid), so every book message stored for a
subscription should form one unbroken run. A hole is expected after a gap: the
connector drops a broken market's deltas until its fresh snapshot, and those seqs are
never stored. A hole is *explained* when a gap recorded on the same subscription
starts at or before it; an unexplained hole is data lost on the way to the database.

Subscriptions audited: those with a WS snapshot stored within the window, and every
subscription of the newest connection (it may have started before the window). The
hole and range queries are the writer's own (:mod:`shared.store.queries`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.config import DbConfig
from shared.store.engine import normalize_url
from shared.store.queries import SubscriptionRecord, subscription_holes
from shared.store.schema import book_snapshots, gaps

_SINCE = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d)$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def database_exists(db: DbConfig) -> bool:
    """False for a SQLite file that is not there yet (opening it would create an empty one)."""
    url = normalize_url(db.url)
    if not url.drivername.startswith("sqlite"):
        return True
    path = url.database or ""
    return path in ("", ":memory:") or path.startswith("file:") or Path(path).exists()


def parse_since(text: str) -> timedelta:
    """``30s`` / ``15m`` / ``1h`` / ``2d`` -> timedelta (ValueError with advice otherwise)."""
    m = _SINCE.match(text.strip().lower())
    if not m:
        raise ValueError(f"--since {text!r}: use a number and a unit, e.g. 30s, 15m, 1h, 2d")
    return timedelta(seconds=float(m.group(1)) * _UNIT_S[m.group(2)])


@dataclass
class SubscriptionAudit(SubscriptionRecord):
    """A stored subscription's holes, and those no recorded gap explains."""

    unexplained: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class GapRecord:
    conn: int
    sid: int
    expected: int
    received: int
    tickers: list[str]
    reason: str
    method: str  # how it was recovered ("" while open)
    detected: datetime | None
    recovered: datetime | None

    @property
    def duration_s(self) -> float | None:
        if self.detected is None or self.recovered is None:
            return None
        return (self.recovered - self.detected).total_seconds()


@dataclass
class Audit:
    since: datetime
    subscriptions: list[SubscriptionAudit]
    gaps: list[GapRecord]

    @property
    def holes(self) -> int:
        return sum(len(s.holes) for s in self.subscriptions)

    @property
    def unexplained(self) -> int:
        return sum(len(s.unexplained) for s in self.subscriptions)

    @property
    def missing(self) -> int:
        return sum(s.missing for s in self.subscriptions)

    def methods(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for g in self.gaps:
            key = g.method or "open"
            out[key] = out.get(key, 0) + 1
        return out


async def audit(engine: AsyncEngine, since: datetime) -> Audit:
    s = book_snapshots.c
    g = gaps.c
    async with engine.connect() as conn:
        newest = (await conn.execute(select(func.max(s.conn)).where(s.xseq > 0))).scalar()
        cond = s.recv >= since
        if newest is not None:
            cond = cond | (s.conn == newest)
        subs = (
            await conn.execute(
                select(s.conn, s.sid).where(s.xseq > 0, cond).distinct().order_by(s.conn, s.sid)
            )
        ).all()
        # The earliest recorded gap per subscription: holes from there on are what recovery cost.
        first_gap = dict(
            ((c, sid), e)
            for c, sid, e in await conn.execute(
                select(g.conn, g.sid, func.min(g.expected)).group_by(g.conn, g.sid)
            )
        )
        audited: list[SubscriptionAudit] = []
        for c, sid in subs:
            sub = await subscription_holes(conn, c, sid)
            start = first_gap.get((c, sid))
            unexplained = [h for h in sub.holes if start is None or h[0] < start]
            audited.append(
                SubscriptionAudit(c, sid, sub.first_seq, sub.last_seq, sub.stored, sub.holes, unexplained)
            )
        rows = await conn.execute(
            select(g.conn, g.sid, g.expected, g.status, g.received, g.tickers, g.reason, g.method)
            .add_columns(g.detected, g.recovered)
            .where(g.recv >= since)
            .order_by(g.recv)
        )
        records: dict[tuple[int, int, int], GapRecord] = {}
        for r in rows:
            key = (r.conn, r.sid, r.expected)
            rec = records.get(key)
            if rec is None:
                rec = records[key] = GapRecord(
                    r.conn,
                    r.sid,
                    r.expected,
                    r.received,
                    msgspec.json.decode(r.tickers),
                    r.reason,
                    "",
                    None,
                    None,
                )
            rec.detected = rec.detected or r.detected
            if r.status == "recovered":
                rec.method = r.method
                rec.recovered = r.recovered
    return Audit(since, audited, sorted(records.values(), key=lambda r: (r.detected or since, r.conn, r.sid)))
