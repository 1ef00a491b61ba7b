"""Sequence checks on the sequenced channels that are not the book.

Kalshi's December spec gives ``trade``, ``market_lifecycle_v2`` (which also carries
``event_lifecycle`` and ``event_fee_update``), ``multivariate_market_lifecycle``,
``order_group_updates`` and the communications events a per-sid ``seq`` like the book's. A gap
there is a real loss (a trade, a status change, a fee override) but no snapshot can repair it,
so the frames are published whatever their seq: a gap is counted (``kxfeed_ws_gaps_total`` by
the channel's reason), logged once with the subscription's markets, and published as a bus
:class:`~shared.messages.Gap` whose ``reason`` names the channel, for the writer to store and
``kxfeed gaps`` to show. It stays open: its recovery is elsewhere (after a lifecycle gap the worker
re-discovers the market set over REST at once, which re-reads every market's status and every
event's fee overrides, and publishes the Gap "recovered"; the trades of a trade gap are for the
gap filler's REST backfill).

That Gap's ``tickers`` stay empty on purpose: every Gap consumer today (the orderbook builder,
the gap filler, the tests' reference books) reads a Gap's tickers as *books* to invalidate and
repair from REST, which would turn a lost trade into broken books and a false "recovered by
rest" record. The markets are in the log line until the Gap says which channel it is about.

Frames without ``seq`` are accepted unchecked while Kalshi rolls the field out. A jump far
ahead re-anchors like a book sid's (see :meth:`.sequencing.BookResync.seq_slow`). Pure: no
clock, no socket, no metric.
"""

from __future__ import annotations

from shared.log import BurstLog
from shared.messages import Gap, Message

from .counts import Counts
from .subscriptions import LIFECYCLE, Sub

#: Gap reason (and ``gaps`` label) per sequenced channel; each names its channel.
REASONS = {
    "trade": "trade_seq",
    LIFECYCLE: "lifecycle_seq",
    "multivariate_market_lifecycle": "multivariate_lifecycle_seq",
    "order_group_updates": "order_group_seq",
    "communications": "communications_seq",
}
#: How each channel's gap gets recovered, as the Gap's ``method`` ("" = not by the connector).
METHODS = {LIFECYCLE: "rediscover", "multivariate_market_lifecycle": "rediscover"}


class StreamSeq:
    def __init__(self, *, conn: int, out: list[Message], counts: Counts, burst: BurstLog) -> None:
        self.conn = conn
        self.out = out
        self.counts = counts
        self._burst = burst

    def check(self, sub: Sub, seq: int | None, ts_recv: int) -> Gap | None:
        """Track ``seq`` on ``sub``; the Gap when this frame opened one. The frame is kept either
        way (a seq at or below the last one is published too: nothing here can be re-asked)."""
        if seq is None:
            return None
        last = sub.last_seq
        if last is None or seq == last + 1:
            sub.last_seq = seq
            return None
        if seq > last:
            gap = self._gap(sub, last + 1, seq, ts_recv)
            sub.jump_at, sub.jump_from, sub.last_seq = seq, last, seq
            return gap
        if sub.jump_at == last and seq > sub.jump_from:
            self.counts.add("reanchored")
            sub.jump_at, sub.last_seq = None, seq
        return None

    def _gap(self, sub: Sub, expected: int, received: int, ts_recv: int) -> Gap:
        reason = REASONS.get(sub.channel, f"{sub.channel}_seq")
        markets = sorted(sub.markets)  # empty for a global subscription: every market
        self.counts.add("gaps", reason)
        self._burst.event(
            f"sgap:{sub.sid}",
            "sequence gap on a channel with no snapshot: frames lost",
            channel=sub.channel,
            sid=sub.sid,
            expected=expected,
            received=received,
            markets=markets[:50],
            n_markets=len(markets),
        )
        gap = Gap(
            conn=self.conn,
            sid=sub.sid,
            expected=expected,
            received=received,
            tickers=[],  # not books: see the module's docstring
            reason=reason,
            method=METHODS.get(sub.channel, ""),
            detected_ms=ts_recv // 1_000_000,
            ts_recv=ts_recv,
        )
        self.out.append(gap)
        return gap
