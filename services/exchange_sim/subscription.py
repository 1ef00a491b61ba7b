"""A simulated subscription's state, the session's limits and protocol refusals.

Split from :mod:`services.exchange_sim.session` (which runs the commands): what a subscription
is, which channels exist and which of them number their frames.
"""

from __future__ import annotations

import re
from typing import Any

from services.exchange_sim.emission import CH_BOOK, CH_LIFE, CH_TICKER, CH_TRADE
from shared.kalshi.ratelimit import TokenBucket

#: channel -> routing key (None: accepted, but the simulator has no private account activity to send).
CHANNELS: dict[str, int | None] = {
    "orderbook_delta": CH_BOOK,
    "ticker": CH_TICKER,
    "trade": CH_TRADE,
    "market_lifecycle_v2": CH_LIFE,
    "multivariate_market_lifecycle": None,
    "fill": None,
    "market_positions": None,
    "user_orders": None,
    "order_group_updates": None,
    "communications": None,
}
#: Paid index feeds the simulated account has no access to.
NO_ACCESS = {"cfbenchmarks_value", "cfbenchmarks_value_5hz", "pyth_value"}
MARKET_FILTERED = {"orderbook_delta", "ticker", "trade", "fill", "market_positions", "user_orders"}
ADD_DELETE = {"orderbook_delta", "ticker", "trade", "fill", "user_orders"}
#: Channels whose frames carry a per-sid ``seq`` (the December AsyncAPI added trade and the
#: lifecycle channels; ticker, fill, market_positions and user_orders still have none).
SEQ_CHANNELS = {
    "orderbook_delta",
    "trade",
    "market_lifecycle_v2",
    "multivariate_market_lifecycle",
    "order_group_updates",
    "communications",
}
TICKER_RE = re.compile(r"^[A-Z0-9-]+$")


class ProtoError(Exception):
    """A refused command: error ``code``; ``sub`` when it concerns a live subscription (the
    error frame then names its sid, and seq on a sequenced channel); ``extra`` goes in ``msg``."""

    def __init__(self, code: int, sub: SimSubscription | None = None, **extra: Any) -> None:
        super().__init__(code)
        self.code = code
        self.sub = sub
        self.extra = extra


class SimSubscription:
    __slots__ = (
        "all",
        "bucket",
        "channel",
        "heads",
        "markets",
        "marks",
        "route",
        "seq",
        "sid",
        "skip_ack",
        "yes_price",
    )

    def __init__(self, sid: int, channel: str, *, yes_price: bool, skip_ack: bool, rate: float) -> None:
        self.sid = sid
        self.channel = channel
        self.route = CHANNELS.get(channel)
        self.markets: dict[str, None] = {}  # insertion-ordered set
        self.all = False
        self.yes_price = yes_price
        self.skip_ack = skip_ack
        self.seq = 0
        self.bucket = command_bucket(rate)
        #: Envelope heads per frame type (``{"type":...,"sid":N,"seq":``), built once.
        self.heads: dict[bytes, bytes] = {}
        #: Ground truth's delta-log position per seq (index seq - 1), when recording.
        self.marks: list[int] | None = None

    def error_seq(self) -> int | None:
        """The ``seq`` an error about this subscription carries: the last one sent, on a
        sequenced channel that has sent one (an error takes no number)."""
        return self.seq if self.channel in SEQ_CHANNELS and self.seq > 0 else None

    def head(self, type_prefix: bytes, seq: bool) -> bytes:
        h = self.heads[type_prefix] = type_prefix + (b'%d,"seq":' if seq else b"%d") % self.sid
        return h


class SessionLimits:
    def __init__(
        self,
        max_markets_per_sub: int = 0,
        sub_cmd_rate: float = 100.0,
        session_cmd_rate: float = 10_000.0,
        ok_consumes_seq: bool = False,
    ):
        #: Markets per subscription, 0 = no cap (error 26 above it; see SimSession._subscribe).
        self.max_markets = max_markets_per_sub
        self.sub_cmd_rate = sub_cmd_rate
        self.session_cmd_rate = session_cmd_rate
        #: Whether an ``ok`` to update_subscription takes the sid's next seq (Kalshi's choice is
        #: unconfirmed; kxfeed must handle both) or repeats the last one.
        self.ok_consumes_seq = ok_consumes_seq


def command_bucket(rate: float) -> TokenBucket:
    """Commands per second, with a burst of one second's worth; starts full."""
    # A rate of 0 (or below) refuses every command, as it always has.
    return TokenBucket(max(rate, 1e-9), max(rate, 1e-9), now=0.0)
