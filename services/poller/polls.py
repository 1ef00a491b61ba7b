"""REST markets -> PollSnapshot, and "only changes count": what was last published per market.

A REST Market carries top of book and statistics as decimal strings; an empty side
reads bid ``0`` / ask ``1`` (Kalshi and the simulator alike), which becomes None here.
A snapshot is published when its content differs from the last one published for the
market, or when it switches between periodic and fallback polling (so a consumer sees
the fallback start even on a quiet market). MarketMeta likewise, header fields aside.
"""

from __future__ import annotations

from typing import Any

import msgspec

from shared.kalshi import parse
from shared.kalshi.rest_models import Market
from shared.messages import MarketMeta, PollContent, PollSnapshot
from shared.units import ONE_DOLLAR


def _size(text: str) -> int:
    return parse.count(text) if text else 0


def poll_snapshot(m: Market, ts_recv: int, *, fallback: bool) -> PollSnapshot:
    """The market's top of book and stats (raises UnitError on a value finer than its unit)."""
    bid = parse.optional_price(m.yes_bid_dollars)
    ask = parse.optional_price(m.yes_ask_dollars)
    last = parse.optional_price(m.last_price_dollars)
    return PollSnapshot(
        ticker=m.ticker,
        status=m.status,
        yes_bid=bid if bid else None,
        yes_ask=ask if ask is not None and ask < ONE_DOLLAR else None,
        yes_bid_size=_size(m.yes_bid_size_fp) if bid else 0,
        yes_ask_size=_size(m.yes_ask_size_fp) if ask is not None and ask < ONE_DOLLAR else 0,
        last_price=last if last else None,
        volume=_size(m.volume_fp),
        open_interest=_size(m.open_interest_fp),
        fallback=fallback,
        ts_recv=ts_recv,
    )


def meta_content(m: MarketMeta) -> Any:
    # Header fields (publisher stamp, update/receive times) are not content.
    return msgspec.structs.replace(m, ts_exch=None, ts_recv=0, pub="", epoch=0, seq=0)


class Published:
    """The last PollSnapshot and MarketMeta content published per market."""

    def __init__(self) -> None:
        self.polls: dict[str, tuple[PollContent, bool]] = {}
        self.metas: dict[str, Any] = {}
        self.unchanged = 0

    def poll_changed(self, p: PollSnapshot) -> bool:
        key = (p.content(), p.fallback)
        if self.polls.get(p.ticker) == key:
            self.unchanged += 1
            return False
        self.polls[p.ticker] = key
        return True

    def meta_changed(self, m: MarketMeta) -> bool:
        content = meta_content(m)
        if self.metas.get(m.ticker) == content:
            return False
        self.metas[m.ticker] = content
        return True

    def forget(self, ticker: str) -> None:
        self.polls.pop(ticker, None)
        self.metas.pop(ticker, None)
