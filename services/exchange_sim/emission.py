"""One unit of exchange activity: the state change it makes and the frame body it is sent as.

The activity engine produces emissions and applies each to its private state at
once; the dispatcher applies the same emission to the public state (REST and
ground truth) at the moment it fans the frame out. One ``apply`` for both keeps
books, tickers, trades and REST in agreement at every moment, even when blast
mode generates ahead of what has been sent.
"""

from __future__ import annotations

from typing import Any

# Channels a subscription can take (routing keys).
CH_BOOK = 0
CH_TICKER = 1
CH_TRADE = 2
CH_LIFE = 3

# What ``data`` holds.
K_DELTA = 0  # (side 0=yes 1=no, price, delta)
K_TICKER = 1  # the time (Unix ms) of the top-of-book change it reports
K_TRADE = 2  # TradeRec
K_LIFE = 3  # LifeChange
K_INIT = 4  # LifeChange, never sent (initial market statistics)

YES = 0
NO = 1


class TradeRec:
    __slots__ = ("count", "is_block", "oi_after", "taker_yes", "ticker", "trade_id", "ts_ms", "yes_price")

    def __init__(
        self,
        trade_id: str,
        ticker: str,
        yes_price: int,
        count: int,
        taker_yes: bool,
        ts_ms: int,
        oi_after: int,
        is_block: bool = False,
    ) -> None:
        self.trade_id = trade_id
        self.ticker = ticker
        self.yes_price = yes_price
        self.count = count
        self.taker_yes = taker_yes
        self.ts_ms = ts_ms
        self.oi_after = oi_after
        self.is_block = is_block


class LifeChange:
    """A non-book state change: ``scope`` is "market", "event" or "new_event"."""

    __slots__ = ("fields", "key", "new_event", "scope")

    def __init__(
        self, scope: str, key: str, fields: dict[str, Any] | None = None, new_event: Any = None
    ) -> None:
        self.scope = scope
        self.key = key
        self.fields = fields or {}
        self.new_event = new_event


class Emission:
    """``type_prefix`` is the start of the envelope up to the sid (``{"type":"ticker","sid":``);
    ``body`` the encoded ``msg`` object (None: state-only, never sent); ``body_yp`` the
    ``use_yes_price`` variant of a NO-side book frame (else None); ``seq`` whether the
    channel numbers its frames."""

    __slots__ = ("body", "body_yp", "channel", "data", "kind", "seq", "ticker", "type_prefix")

    def __init__(
        self,
        kind: int,
        channel: int,
        ticker: str,
        type_prefix: bytes,
        body: bytes | None,
        data: Any,
        *,
        seq: bool = False,
        body_yp: bytes | None = None,
    ) -> None:
        self.kind = kind
        self.channel = channel
        self.ticker = ticker
        self.type_prefix = type_prefix
        self.body = body
        self.data = data
        self.seq = seq
        self.body_yp = body_yp


def type_prefix(type_name: str) -> bytes:
    return b'{"type":"' + type_name.encode() + b'","sid":'


P_DELTA = type_prefix("orderbook_delta")
P_SNAPSHOT = type_prefix("orderbook_snapshot")
P_TICKER = type_prefix("ticker")
P_TRADE = type_prefix("trade")
P_LIFE = type_prefix("market_lifecycle_v2")
P_EVENT = type_prefix("event_lifecycle")
P_FEE = type_prefix("event_fee_update")
