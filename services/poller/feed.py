"""Is the WebSocket feed up, per connector and per market? The fallback's pure core.

What the connector actually publishes decides it:

- ``hb.<connector id>`` every heartbeat interval, with ``counters["connected"]`` = 1 while
  its connection is up and subscribed. No heartbeat for ``timeout_s``, or connected = 0,
  means that connector's markets (its shard: ``shard_of(ticker, count)``) have no feed.
- ``bookstate.<ticker>`` INVALID from a connector (gap, disconnect, terminal error) until
  the VALID that follows its fresh snapshot: that one market has no feed. A connector
  that restarts (new epoch) forgets what the old process said, and subscribes afresh.

A market's outage starts at the earlier of the two; the fallback polls it once the outage
is ``fallback_after`` old, and stops as soon as both say healthy again. With several
redundant collectors (``collectors``, see shared/collectors.py) a market has a feed while any
one of them carries it: its outage starts when the last of them went down. Pure: pass ``now``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from shared import collectors as coll
from shared.kalshi.discovery import shard_of
from shared.messages import BookState, Heartbeat


def connector_ids(shard_count: int, collector: str = "") -> list[str]:
    """The worker ids of the connector processes of one collector the config implies."""
    return coll.connector_ids(collector, shard_count)


@dataclass
class ConnectorHealth:
    name: str
    last_hb: float | None = None
    epoch: int = 0
    connected: bool = False
    #: When this connector was last seen going down (or when watching began); None = up.
    down_since: float | None = None
    markets_invalid: dict[str, float] = field(default_factory=dict)


class FeedHealth:
    def __init__(
        self,
        shard_count: int,
        *,
        timeout_s: float,
        fallback_after: float,
        now: float,
        collectors: Sequence[str] = ("",),
    ) -> None:
        self.shard_count = max(1, shard_count)
        self.timeout_s = timeout_s
        self.fallback_after = fallback_after
        #: Per collector, its shards' ids in shard order.
        self.lines = [connector_ids(self.shard_count, c) for c in dict.fromkeys(collectors)]
        # Nothing heard yet counts as down from now: a feed that never comes up is a feed down.
        self.links = {n: ConnectorHealth(n, down_since=now) for ids in self.lines for n in ids}

    def links_of(self, ticker: str) -> list[ConnectorHealth]:
        """The connector of each collector that carries ``ticker``."""
        i = shard_of(ticker, self.shard_count) if self.shard_count > 1 else 0
        return [self.links[ids[i]] for ids in self.lines]

    # ---- input -----------------------------------------------------------------------------
    def heartbeat(self, hb: Heartbeat, now: float) -> None:
        link = self.links.get(hb.worker)
        if link is None:
            return
        if hb.epoch != link.epoch:
            # A new process: it subscribes every market afresh; what the old one said is moot.
            link.epoch = hb.epoch
            link.markets_invalid.clear()
        link.last_hb = now
        link.connected = bool(hb.counters.get("connected", 0))

    def book_state(self, m: BookState, now: float) -> None:
        link = self.links.get(m.pub)
        if link is None:
            return
        if m.valid:
            link.markets_invalid.pop(m.ticker, None)
        else:
            link.markets_invalid.setdefault(m.ticker, now)

    def tick(self, now: float) -> list[tuple[str, bool]]:
        """Re-judge every connector; returns the transitions as (connector id, now up)."""
        out = []
        for link in self.links.values():
            up = link.connected and link.last_hb is not None and now - link.last_hb <= self.timeout_s
            if up and link.down_since is not None:
                link.down_since = None
                out.append((link.name, True))
            elif not up and link.down_since is None:
                link.down_since = now
                out.append((link.name, False))
        return out

    # ---- output ----------------------------------------------------------------------------
    def down_since(self, ticker: str) -> float | None:
        latest: float | None = None
        for link in self.links_of(ticker):
            since = link.down_since
            invalid = link.markets_invalid.get(ticker)
            if invalid is not None and (since is None or invalid < since):
                since = invalid
            if since is None:
                return None  # this collector carries it
            latest = since if latest is None else max(latest, since)
        return latest

    def due(self, tickers: Iterable[str], now: float) -> list[str]:
        """Markets whose feed has been down at least ``fallback_after``."""
        out = []
        for t in tickers:
            since = self.down_since(t)
            if since is not None and now - since >= self.fallback_after:
                out.append(t)
        return out

    def forget(self, keep: set[str]) -> None:
        """Drop per-market marks of markets no longer followed."""
        for link in self.links.values():
            for t in [t for t in link.markets_invalid if t not in keep]:
                del link.markets_invalid[t]

    def up(self) -> list[str]:
        return [n for n, link in self.links.items() if link.down_since is None]
