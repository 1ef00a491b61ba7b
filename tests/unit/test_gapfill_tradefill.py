"""The trade backfill's shell with a fake REST client: what opens a window, what is published,
how a failing fetch is retried and then given up (counted, nothing published)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from services.gapfill.tradefill import TradeBackfill
from services.gapfill.trades import Window
from shared.kalshi.rest import RestError
from shared.kalshi.rest_models import RestTrade
from shared.log import BurstLog
from shared.messages import BookState, Gap, Message, Trade


def rest_trade(i: int, ticker: str, ms: int) -> RestTrade:
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"
    return RestTrade(
        trade_id=f"t{i}", ticker=ticker, count_fp="1.00", yes_price_dollars="0.4000",
        no_price_dollars="0.6000", created_time=iso, taker_outcome_side="yes",
    )  # fmt: skip


class FakeRest:
    def __init__(self, trades: list[RestTrade], fail: int = 0) -> None:
        self.listed = trades
        self.fail = fail
        self.calls: list[dict[str, Any]] = []

    async def trades(self, **kw: Any) -> AsyncIterator[RestTrade]:
        self.calls.append(kw)
        if self.fail:
            self.fail -= 1
            raise RestError("/markets/trades", 503, "unavailable")
        for t in self.listed:
            if kw.get("ticker") in (None, t.ticker):
                yield t


def shell(rest: FakeRest) -> tuple[TradeBackfill, list[Message]]:
    out: list[Message] = []
    tb = TradeBackfill(rest, 600.0, "gapfill", BurstLog(logging.getLogger("test.tradefill")), out.extend)  # type: ignore[arg-type]
    return tb, out


def live(i: int, ticker: str, ms: int, epoch: int = 1) -> Trade:
    return Trade(
        trade_id=f"t{i}", ticker=ticker, yes_price=4000, no_price=6000, count=100, taker_side="yes",
        ts_exch=ms, ts_recv=ms * 1_000_000, pub="connector", epoch=epoch,
    )  # fmt: skip


T0 = 1_800_000_000_000


def test_what_opens_a_window() -> None:
    tb, _ = shell(FakeRest([]))
    tb.on_message(live(1, "A", T0), 0.0)
    assert tb.ledger.pending == []
    gap = Gap(
        conn=1,
        sid=4,
        expected=9,
        received=12,
        tickers=["A"],
        reason="trade_seq_gap",
        pub="connector",
        epoch=1,
    )
    tb.on_message(gap, 1.0)
    (p,) = tb.ledger.pending
    assert p.tickers == {"A"} and (p.conn, p.sid, p.expected) == (1, 4, 9)
    tb.on_message(live(2, "B", T0 + 10), 2.0)  # live again: the window ended
    book_gap = Gap(
        conn=1, sid=2, expected=5, received=8, tickers=["A"], reason="seq_gap", pub="connector", epoch=1
    )
    tb.on_message(book_gap, 3.0)
    assert len(tb.ledger.pending) == 2 and tb.ledger.pending[1].tickers is None
    tb, _ = shell(FakeRest([]))
    tb.on_message(BookState(ticker="A", valid=False, reason="disconnect", pub="connector", epoch=1), 0.0)
    tb.on_message(BookState(ticker="B", valid=False, reason="disconnect", pub="connector", epoch=1), 0.0)
    assert [p.tickers for p in tb.ledger.pending] == [None]
    tb, _ = shell(FakeRest([]))
    tb.on_message(BookState(ticker="A", valid=False, reason="shutdown", pub="connector", epoch=1), 0.0)
    assert tb.ledger.pending == [], "a requested stop: the checkpoint covers the downtime at the next start"
    tb, _ = shell(FakeRest([]))
    tb.on_message(live(1, "A", T0, epoch=1), 0.0)
    tb.on_message(live(2, "A", T0 + 5, epoch=2), 1.0)  # a new connector process
    (p,) = tb.ledger.pending
    assert p.reason == "connector_restart" and p.end_ms == T0 + 5  # its first trade: live again
    tb.on_message(Trade(trade_id="x", ticker="A", yes_price=1, no_price=2, count=3, taker_side="no",
                        pub="gapfill", epoch=7, source="rest"), 2.0)  # fmt: skip
    assert "x" not in tb.ledger.ids  # our own echo: nothing new


def test_the_connectors_channel_gaps_name_no_markets() -> None:
    """The connector's trade subscription spans every market, so its trade_seq Gap names none:
    a window over every market. Another channel's sequence gap is no reason to fetch trades."""
    tb, _ = shell(FakeRest([]))
    tb.on_message(live(1, "A", T0), 0.0)
    other = Gap(
        conn=1, sid=3, expected=4, received=6, tickers=[], reason="lifecycle_seq", pub="connector", epoch=1
    )
    tb.on_message(other, 1.0)
    assert tb.ledger.pending == []
    trade_gap = Gap(
        conn=1, sid=2, expected=7, received=9, tickers=[], reason="trade_seq", pub="connector", epoch=1
    )
    tb.on_message(trade_gap, 2.0)
    (p,) = tb.ledger.pending
    assert p.tickers is None and (p.conn, p.sid, p.expected) == (1, 2, 7)


def test_a_window_publishes_the_unseen_trades_and_its_record() -> None:
    rest = FakeRest(
        [rest_trade(3, "A", T0 + 3000), rest_trade(2, "B", T0 + 2000), rest_trade(1, "A", T0 + 1000)]
    )
    tb, out = shell(rest)
    tb.on_message(live(1, "A", T0 + 1000), 0.0)
    w = Window(None, "disconnect", T0, T0 + 3000, T0 + 1500, False, conn=2)
    asyncio.run(tb.backfill(w))
    assert rest.calls == [{"min_ts": T0 // 1000, "max_ts": (T0 + 3000) // 1000 + 1}]  # one call, every market
    *trades, rec = out
    assert [(t.trade_id, t.source) for t in trades if isinstance(t, Trade)] == [
        ("t2", "rest"),
        ("t3", "rest"),
    ]
    assert isinstance(rec, Gap) and rec.status == "recovered" and rec.method == "rest_trades"
    assert (rec.conn, rec.sid, rec.expected, rec.received) == (2, 0, T0, T0 + 3000)
    assert rec.tickers == ["A", "B"] and rec.reason == "trades:disconnect"
    assert tb.counts["trades_backfilled"] == 2 and tb.counts["trade_windows"] == 1
    out.clear()
    asyncio.run(tb.backfill(w))  # the same window again: every id seen, only the record
    assert [m.kind for m in out] == ["gap"]


def test_a_few_markets_are_asked_one_by_one_and_failures_are_retried_then_given_up() -> None:
    rest = FakeRest([rest_trade(5, "A", T0 + 500)], fail=1)
    tb, out = shell(rest)
    w = Window(frozenset({"A"}), "trade_seq_gap", T0, T0 + 1000, T0, False, conn=1, sid=4, expected=9)
    asyncio.run(tb.backfill(w))
    assert [c.get("ticker") for c in rest.calls] == ["A", "A"]  # failed once, retried
    assert [m.kind for m in out] == ["trade", "gap"]
    rec = out[-1]
    assert isinstance(rec, Gap) and (rec.conn, rec.sid, rec.expected) == (1, 4, 9)  # closes that gap
    rest = FakeRest([rest_trade(6, "A", T0 + 500)], fail=10)
    tb, out = shell(rest)
    asyncio.run(tb.backfill(w))
    assert out == [] and tb.counts["trade_failures"] == 1 and len(rest.calls) == 3
