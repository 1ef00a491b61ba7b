"""What a subscription table is made of: the channels, one subscription (Sub), a shard of
markets and its subs, and a command waiting for its reply (Pending). Plain state; the table
that moves them (:mod:`.subscriptions`) re-exports the names.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

BOOK = "orderbook_delta"
MARKET_CHANNELS = (BOOK, "ticker", "trade")
LIFECYCLE = "market_lifecycle_v2"
#: Private channels the connector can carry (they need an authenticated account).
PRIVATE_CHANNELS = ("fill", "market_positions", "user_orders", "order_group_updates")


def _is_global(channel: str) -> bool:
    """One subscription for every market (no market list), not one per shard."""
    return channel == LIFECYCLE or channel in PRIVATE_CHANNELS


class Sub:
    """One subscription; ``sid`` is 0 until Kalshi confirms it."""

    __slots__ = (
        "awaiting",
        "channel",
        "deadline",
        "jump_at",
        "jump_from",
        "last_seq",
        "markets",
        "shard",
        "sid",
    )

    def __init__(self, channel: str, shard: int, markets: Iterable[str] = ()) -> None:
        self.channel = channel
        self.shard = shard
        self.markets: set[str] = set(markets)
        self.sid = 0
        self.last_seq: int | None = None
        #: The last gap: the seq that jumped ahead and the last seq before it. Until a frame
        #: follows the jump in order, the jump itself may be the odd one out (see resync).
        self.jump_at: int | None = None
        self.jump_from = 0
        #: Book markets waiting for a snapshot on this sid, and when that wait is over.
        self.awaiting: set[str] = set()
        self.deadline: float | None = None

    def __repr__(self) -> str:
        return f"Sub({self.channel}, sid={self.sid}, shard={self.shard}, markets={len(self.markets)})"


class Shard:
    __slots__ = ("full", "index", "markets", "subs")

    def __init__(self, index: int, markets: Iterable[str]) -> None:
        self.index = index
        self.markets: set[str] = set(markets)
        self.subs: dict[str, Sub] = {}
        #: Kalshi refused more markets for it (error 26 on add_markets): add no more.
        self.full = False

    def live(self) -> bool:
        return len(self.subs) == len(MARKET_CHANNELS) and all(s.sid for s in self.subs.values())


class Pending(NamedTuple):
    kind: str  # subscribe | add | delete | snapshot | unsubscribe
    subs: tuple[Sub, ...]
    markets: tuple[str, ...]
    sent: float
