"""Which gaps the connector has not repaired in time: the gap filler's pure core.

The connector publishes a Gap (status open) when a subscription's sequence breaks, a
BookState VALID per market as its fresh WS snapshot arrives, and a Gap (recovered) with
its method once every market is back. This tracker follows those: a gap still holding
markets ``rest_after`` seconds after it was seen is due for REST orderbooks; when REST
has brought back every market the connector had not, the tracker writes the gap's
"recovered" record itself with method ``rest`` (same conn/sid/expected, so it is the
same gap in the database). The connector's own record for that gap, when it comes
later, is then not news; one for a gap it closed first is, and ours is never written.

Pure: ``now`` is monotonic seconds, ``ts_recv`` wall-clock ns.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from shared.gaps import closing_record
from shared.messages import Gap

Key = tuple[int, int, int]  # (conn, sid, expected): one gap, as the writer keys it

#: How long a gap we closed is remembered (so the connector's later record is not counted twice).
_CLOSED_MEMORY_S = 3600.0


def key_of(g: Gap) -> Key:
    return (g.conn, g.sid, g.expected)


@dataclass
class Tracked:
    gap: Gap
    seen: float
    #: Markets neither the connector nor REST has brought back yet.
    pending: set[str]
    #: Markets repaired from REST orderbooks.
    by_rest: set[str] = field(default_factory=set)
    inflight: bool = False
    retry_at: float = 0.0


class GapTracker:
    def __init__(self, rest_after: float, retry_s: float = 1.0) -> None:
        self.rest_after = rest_after
        self.retry_s = retry_s
        self.open: dict[Key, Tracked] = {}
        self.closed_by_us: dict[Key, float] = {}

    def opened(self, g: Gap, now: float) -> None:
        if g.tickers and key_of(g) not in self.open:
            self.open[key_of(g)] = Tracked(g, now, set(g.tickers))

    def recovered(self, g: Gap, now: float) -> bool:
        """The connector closed a gap. True when that is news (we did not close it first)."""
        key = key_of(g)
        self.open.pop(key, None)
        self._prune(now)
        return self.closed_by_us.pop(key, None) is None

    def restored(self, ticker: str, now: float, ts_recv: int) -> list[Gap]:
        """The connector's fresh snapshot made this market VALID again. Returns the records
        of gaps this completes that REST had partly repaired (in band alone: the connector
        writes the record, nothing to do)."""
        records = []
        for key, t in list(self.open.items()):
            t.pending.discard(ticker)
            if t.pending or t.inflight:
                continue
            del self.open[key]
            if t.by_rest:
                self.closed_by_us[key] = now
                records.append(closing_record(t.gap, "rest", ts_recv))
        return records

    def due(self, now: float) -> list[str]:
        """Markets of gaps older than ``rest_after`` to fetch now; those gaps go in flight."""
        out: set[str] = set()
        for t in self.open.values():
            if not t.inflight and t.pending and now - t.seen >= self.rest_after and now >= t.retry_at:
                t.inflight = True
                out |= t.pending
        return sorted(out)

    def fetched(
        self, got: Iterable[str], gone: Iterable[str], now: float, ts_recv: int
    ) -> tuple[set[str], list[Gap]]:
        """REST books for ``got`` arrived (``gone``: markets Kalshi no longer knows).

        Returns the markets whose books are still wanted (the connector did not restore
        them meanwhile) and the "recovered" records of the gaps REST completed.
        """
        got_set, gone_set = set(got), set(gone)
        wanted: set[str] = set()
        records: list[Gap] = []
        for key, t in list(self.open.items()):
            if not t.inflight:
                continue
            t.inflight = False
            hit = t.pending & got_set
            wanted |= hit
            t.by_rest |= hit
            t.pending -= hit | gone_set
            if t.pending:
                t.retry_at = now + self.retry_s
                continue
            del self.open[key]
            if t.by_rest:
                self.closed_by_us[key] = now
                records.append(closing_record(t.gap, "rest", ts_recv))
        return wanted, records

    def failed(self, now: float) -> None:
        """The REST fetch failed: gaps in flight are tried again after ``retry_s``."""
        for t in self.open.values():
            if t.inflight:
                t.inflight = False
                t.retry_at = now + self.retry_s

    def pending(self) -> int:
        return sum(len(t.pending) for t in self.open.values())

    def _prune(self, now: float) -> None:
        for key in [k for k, at in self.closed_by_us.items() if now - at > _CLOSED_MEMORY_S]:
            del self.closed_by_us[key]
