"""What the detector knows of one Kalshi book, from the orderbook worker's messages.

``tob.<t>`` carries the exact best levels on every change; ``depth.<t>`` carries the
top N levels per side every ``[orderbook] depth_interval`` (changed books only);
``bookstate.<t>`` carries VALID/INVALID transitions. The ask ladder used for sizing
is the newest exact top (from tob) followed by the depth levels strictly behind it;
when a depth message arrived after the last tob, depth alone is the newer picture.
Deeper levels may therefore be up to one depth interval old (``depth_lag`` in a
signal's detail counts the tops since the depth used). The book holds bids only: YES asks are
$1 minus NO bids and NO asks $1 minus YES bids.
"""

from __future__ import annotations

from typing import Any

from shared.messages import Depth, TopOfBook
from shared.units import ONE_DOLLAR

Level = tuple[int, int]


class BookView:
    __slots__ = (
        "depth_no",
        "depth_order",
        "depth_yes",
        "known",
        "no_bid",
        "no_bid_size",
        "order",
        "seen_ms",
        "tobs_since_depth",
        "trigger_ts_recv",
        "valid",
        "xseq",
        "yes_bid",
        "yes_bid_size",
    )

    def __init__(self) -> None:
        self.valid = False
        self.known = False  # a top of book has arrived since the last INVALID
        self.seen_ms = 0
        self.order = 0  # arrival number of the last tob (per detector)
        self.depth_order = -1
        self.yes_bid = 0  # 0 = empty side
        self.yes_bid_size = 0
        self.no_bid = 0
        self.no_bid_size = 0
        self.depth_yes: list[Level] = []
        self.depth_no: list[Level] = []
        self.xseq = 0
        self.trigger_ts_recv = 0
        self.tobs_since_depth = 0

    def apply_tob(self, m: TopOfBook, now_ms: int, order: int) -> None:
        self.seen_ms = now_ms
        self.order = order
        self.xseq = m.xseq
        self.trigger_ts_recv = m.ts_recv
        self.tobs_since_depth += 1
        if not m.valid:
            self.invalidate(now_ms)
            return
        self.valid = self.known = True
        self.yes_bid = m.yes_bid or 0
        self.yes_bid_size = m.yes_bid_size if m.yes_bid else 0
        # yes_ask = $1 - best NO bid, and its size is that bid's size.
        self.no_bid = ONE_DOLLAR - m.yes_ask if m.yes_ask is not None else 0
        self.no_bid_size = m.yes_ask_size if m.yes_ask is not None else 0

    def apply_depth(self, m: Depth, now_ms: int, order: int) -> None:
        if not m.valid:
            return
        self.seen_ms = now_ms
        self.depth_yes = list(m.yes)
        self.depth_no = list(m.no)
        self.depth_order = order
        self.tobs_since_depth = 0

    def apply_state(self, valid: bool, now_ms: int) -> None:
        self.seen_ms = now_ms
        if not valid:
            self.invalidate(now_ms)
        # VALID again: prices arrive with the tob that follows the transition.

    def invalidate(self, now_ms: int) -> None:
        self.valid = self.known = False
        self.yes_bid = self.yes_bid_size = self.no_bid = self.no_bid_size = 0
        self.depth_yes = []
        self.depth_no = []
        self.depth_order = -1
        self.seen_ms = now_ms

    def seed(self, answer: dict[str, Any], now_ms: int, order: int) -> None:
        """From the orderbook worker's ``book`` control answer (levels best first)."""
        if not answer.get("valid"):
            self.invalidate(now_ms)
            return
        yes = [(int(p), int(s)) for p, s in answer.get("yes", [])]
        no = [(int(p), int(s)) for p, s in answer.get("no", [])]
        self.valid = self.known = True
        self.seen_ms = now_ms
        self.order = order
        self.xseq = int(answer.get("xseq", 0))
        self.yes_bid, self.yes_bid_size = yes[0] if yes else (0, 0)
        self.no_bid, self.no_bid_size = no[0] if no else (0, 0)
        self.depth_yes, self.depth_no = yes, no
        self.depth_order = order
        self.tobs_since_depth = 0

    def fresh(self, now_ms: int, max_age_ms: int) -> bool:
        return self.valid and self.known and now_ms - self.seen_ms <= max_age_ms

    def best_ask(self, side: str) -> tuple[int, int]:
        """(price, size) of the best ask to buy ``side``; (0, 0) when there is none."""
        if self.depth_order > self.order:  # depth is the newer picture (tops coalesced upstream)
            bids = self.depth_no if side == "yes" else self.depth_yes
            return (ONE_DOLLAR - bids[0][0], bids[0][1]) if bids else (0, 0)
        if side == "yes":
            return (ONE_DOLLAR - self.no_bid, self.no_bid_size) if self.no_bid else (0, 0)
        return (ONE_DOLLAR - self.yes_bid, self.yes_bid_size) if self.yes_bid else (0, 0)

    def asks(self, side: str) -> list[Level]:
        """The ask ladder to buy ``side``, cheapest first."""
        bids = self.depth_no if side == "yes" else self.depth_yes
        if self.depth_order > self.order:
            return [(ONE_DOLLAR - p, s) for p, s in bids]
        top, size = self.best_ask(side)
        if not top:
            return []
        out = [(top, size)]
        out.extend((ONE_DOLLAR - p, s) for p, s in bids if ONE_DOLLAR - p > top)
        return out

    def depth_lag(self) -> int:
        """Tops of this book seen since its last depth (-1: no depth yet, top level only)."""
        return self.tobs_since_depth if self.depth_order >= 0 else -1
