"""What the detector hands the worker: a signal before it is stamped and published."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import msgspec

from shared.messages import Side, Signal

_DETAIL = msgspec.json.Encoder()


@dataclass(slots=True)
class Candidate:
    strategy: str
    ticker: str
    side: str
    price: int
    size: int
    fair_ppm: int
    edge: int
    fees: int
    legs: list[str]
    detail: dict[str, Any]
    #: when the triggering input reached the worker (ns), and that input's own ts_recv
    t_in_ns: int
    trigger_ts_recv: int

    def to_signal(self, ts_recv: int = 0) -> Signal:
        """The bus Signal (detail as compact JSON); the publisher stamps the header."""
        return Signal(
            ticker=self.ticker,
            strategy=self.strategy,
            side=cast(Side, self.side),
            price=self.price,
            size=self.size,
            fair_ppm=self.fair_ppm,
            edge=self.edge,
            fees=self.fees,
            legs=self.legs,
            detail=_DETAIL.encode(self.detail).decode(),
            ts_recv=ts_recv,
        )
