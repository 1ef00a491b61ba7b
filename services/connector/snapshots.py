"""The get_snapshot requests of one connection still waiting for their snapshots, by command id.

Kalshi's December spec puts the command's ``id`` on every snapshot that answers a
``get_snapshot``, so each such snapshot is matched to the request that asked for it. That is
what keeps recovery from feeding itself: a market with a request in flight is not asked for
again by a second break of that market (its answer is still to come, later in the sid's
sequence, so it covers the break), and a snapshot naming an id this connection is not waiting
on for that market is not taken for a recovery.

Pure: no clock, no socket. A request leaves when all its markets were answered, when its
command was refused, when its markets leave the set, or when its subscription is replaced
(the resync deadline's fallback) or breaks as a whole (a sid gap asks afresh).
"""

from __future__ import annotations

from collections.abc import Iterable


class SnapshotRequests:
    __slots__ = ("_by_id",)

    def __init__(self) -> None:
        #: command id -> (book sid, markets not answered yet)
        self._by_id: dict[int, tuple[int, set[str]]] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def sent(self, cid: int, sid: int, markets: Iterable[str]) -> None:
        self._by_id[cid] = (sid, set(markets))

    def answered(self, cid: int, sid: int, ticker: str) -> bool:
        """A snapshot carrying ``cid``: True when it answers that request (for that sid and
        market), which then stops waiting for the market."""
        req = self._by_id.get(cid)
        if req is None or req[0] != sid or ticker not in req[1]:
            return False
        req[1].discard(ticker)
        if not req[1]:
            del self._by_id[cid]
        return True

    def settled(self, sid: int, ticker: str) -> None:
        """A snapshot with no id (a server before the December spec, or a subscription's own)
        made ``ticker`` whole: no request of ``sid`` waits for it any more, or the market's
        next break would wait on an answer that never names itself."""
        for cid in [c for c, (s, markets) in self._by_id.items() if s == sid and ticker in markets]:
            markets = self._by_id[cid][1]
            markets.discard(ticker)
            if not markets:
                del self._by_id[cid]

    def in_flight(self, sid: int, ticker: str) -> bool:
        """A request on ``sid`` still owes ``ticker`` its snapshot."""
        return any(s == sid and ticker in markets for s, markets in self._by_id.values())

    def forget(self, tickers: Iterable[str]) -> None:
        """These markets left the set: their answers are discarded unread, so none is awaited."""
        gone = set(tickers)
        for cid in list(self._by_id):
            markets = self._by_id[cid][1]
            markets -= gone
            if not markets:
                del self._by_id[cid]

    def refused(self, cid: int) -> None:
        self._by_id.pop(cid, None)

    def drop_sid(self, sid: int) -> None:
        """The subscription is gone (replaced): its answers can never come."""
        for cid in [c for c, (s, _) in self._by_id.items() if s == sid]:
            del self._by_id[cid]
