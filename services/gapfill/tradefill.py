"""The gap filler's trade backfill: the I/O shell around :mod:`.trades`.

Follows the ``trade.`` stream and the connector's Gaps and BookStates; a trade-channel Gap
(its ``reason`` names trades: its markets), a book Gap or a disconnect BookState (the
connection was lost: every market), or a connector's new epoch (a new process: every
market) opens a window. When it is due, ``/markets/trades`` is asked for exactly that window
(one call without ``ticker`` when many markets are affected), retried through
:mod:`shared.retry`; the trades not seen on the bus are published as ``Trade(source="rest")``
and the window as a Gap "recovered" with method ``rest_trades`` (``kxfeed gaps`` shows it).
Both go through the worker's durable publisher: journaled before they are published.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from shared.backoff import Backoff
from shared.kalshi import parse
from shared.kalshi.rest import RestAuthError, RestError, RestNotFound
from shared.kalshi.rest_models import RestTrade
from shared.log import BurstLog
from shared.messages import BookState, Gap, Message, Trade
from shared.retry import GaveUp, Retry, RetryEvent, RetryPolicy, retrying
from shared.units import UnitError

from . import metrics as M
from .trades import SeenTrade, TradeLedger, Window

if TYPE_CHECKING:
    from shared.kalshi.rest import RestClient

_TICK_S = 0.1
#: More markets than this in a window: one call for every market, filtered here (Kalshi pages
#: all trades of the window once, rather than once per market).
_PER_MARKET_MAX = 4
#: Attempts at one window's fetch (the REST client retries each request itself as well).
_ATTEMPTS = 3


def _ms(t: Trade) -> int:
    return t.ts_exch if t.ts_exch is not None else t.ts_recv // 1_000_000


def _classify(exc: BaseException) -> Retry | None:
    if isinstance(exc, RestNotFound | RestAuthError):
        return None  # asking again gets the same answer
    if isinstance(exc, RestError | OSError | TimeoutError):
        return Retry("rest")
    return None


class TradeBackfill:
    def __init__(
        self,
        rest: RestClient,
        max_window_s: float,
        worker_id: str,
        burst: BurstLog,
        publish: Callable[[list[Message]], None],
    ) -> None:
        self.rest = rest
        self.worker_id = worker_id
        self.burst = burst
        self.publish = publish
        # Before any trade is seen, a window starts when this process started.
        self.ledger = TradeLedger(int(max_window_s * 1000), started_ms=time.time_ns() // 1_000_000)
        self.counts = {"trades_backfilled": 0, "trade_windows": 0, "trade_failures": 0}

    # ---- the bus ---------------------------------------------------------------------------
    def on_message(self, m: Message, now: float) -> None:
        if m.pub == self.worker_id:
            return  # our own trades and records, echoed: already in the ledger
        connector = m.pub.startswith("connector")
        if connector and self.ledger.publisher(m.pub, m.epoch):
            self._trigger(None, "connector_restart", now, pub=m.pub)
        if isinstance(m, Trade):
            self.ledger.seen(SeenTrade(m.trade_id, m.ticker, _ms(m)), now, live=m.source == "ws")
        elif isinstance(m, Gap) and connector and m.status == "open":
            if "trade" in m.reason:  # the trade channel's own sequence broke: its markets
                # (the connector names none: its trade subscription spans every market)
                tickers = m.tickers or None
                self._trigger(tickers, m.reason, now, conn=m.conn, sid=m.sid, expected=m.expected)
            elif m.reason.endswith("_seq"):
                pass  # another channel's sequence (lifecycle, order groups): not trades, not books
            else:  # a book gap: the connection dropped frames, trades may be gone too
                self._trigger(None, m.reason, now, conn=m.conn)
        elif isinstance(m, BookState) and connector:
            if m.valid:  # a fresh snapshot: the connection is back
                self.ledger.back(now)
            elif m.reason == "disconnect":
                self._trigger(None, "disconnect", now, conn=m.conn)

    def _trigger(
        self, tickers: list[str] | None, reason: str, now: float, *, pub: str = "", **key: int
    ) -> None:
        fresh = not any(p.end_ms is None for p in self.ledger.pending)
        self.ledger.trigger(tickers, reason, time.time_ns() // 1_000_000, now, **key)
        if fresh:  # one line per window, not per market of a disconnect
            self.burst.event(
                "trade-window",
                "trades may be missed: backfill window opened",
                reason=reason,
                markets="all" if tickers is None else len(tickers),
                pub=pub,
            )

    # ---- fetching --------------------------------------------------------------------------
    async def run(self) -> None:
        while True:
            await asyncio.sleep(_TICK_S)
            for w in self.ledger.due(time.monotonic(), time.time_ns() // 1_000_000):
                await self.backfill(w)

    async def backfill(self, w: Window) -> None:
        """Fetch one window, publish what the bus missed and the window's record."""
        policy = RetryPolicy(Backoff(0.5, 5.0), max_attempts=_ATTEMPTS)
        try:
            got = await retrying(lambda: self._fetch(w), policy, _classify, self._retried)
        except (TimeoutError, GaveUp, RestError, OSError) as exc:
            M.TRADE_FAILURES.inc()
            self.counts["trade_failures"] += 1
            self.burst.event(
                "trade-backfill-failed",
                "trade backfill failed: trades of this window may be missing",
                reason=w.reason,
                start_ms=w.start_ms,
                end_ms=w.end_ms,
                error=str(exc)[:300],
            )
            return
        ts = time.time_ns()
        by_id: dict[str, Trade] = {}
        for rt in got:
            try:
                t = parse.rest_trade(rt, ts)
            except UnitError as exc:
                M.BAD_TRADES.inc()
                self.burst.event("bad-trade", "REST trade unreadable", trade_id=rt.trade_id, error=str(exc))
                continue
            by_id[t.trade_id] = t
        missing = self.ledger.missing(w, [SeenTrade(t.trade_id, t.ticker, _ms(t)) for t in by_id.values()])
        out: list[Message] = [by_id[s.trade_id] for s in missing]
        now = time.monotonic()
        for s in missing:
            self.ledger.seen(s, now, live=False)
        out.append(self._record(w, {s.ticker for s in missing}, ts))
        self.publish(out)
        M.TRADES_BACKFILLED.inc(len(missing))
        M.TRADE_WINDOWS.labels("capped" if w.capped else "ok").inc()
        self.counts["trades_backfilled"] += len(missing)
        self.counts["trade_windows"] += 1
        self.burst.event(
            "trade-backfill",
            "trades backfilled from REST" + (" (window capped at trade_backfill_max_s)" if w.capped else ""),
            reason=w.reason,
            start_ms=w.start_ms,
            end_ms=w.end_ms,
            markets="all" if w.tickers is None else len(w.tickers),
            listed=len(got),
            backfilled=len(missing),
            capped=w.capped,
        )

    async def _fetch(self, w: Window) -> list[RestTrade]:
        lo, hi = w.rest_range_s
        if w.tickers is None or len(w.tickers) > _PER_MARKET_MAX:
            return [t async for t in self.rest.trades(min_ts=lo, max_ts=hi)]
        out: list[RestTrade] = []
        for ticker in sorted(w.tickers):
            out.extend([t async for t in self.rest.trades(ticker=ticker, min_ts=lo, max_ts=hi)])
        return out

    def _retried(self, ev: RetryEvent) -> None:
        M.TRADE_RETRIES.inc()
        if ev.first:
            self.burst.event(
                "trade-retry", "trade backfill fetch failed: retrying", error=str(ev.error)[:300]
            )

    def _record(self, w: Window, tickers: set[str], ts_recv: int) -> Gap:
        """The window as a recovered Gap. A trade-channel gap keeps its (conn, sid, expected):
        the connector cannot recover a trade gap in band, so this closes that very gap; other
        windows are keyed by their start (sid 0: no subscription of their own)."""
        return Gap(
            conn=w.conn,
            sid=w.sid,
            expected=w.expected if w.sid else w.start_ms,
            received=w.end_ms,
            tickers=sorted(w.tickers if w.tickers is not None else tickers),
            reason=w.reason if "trade" in w.reason else f"trades:{w.reason}",
            status="recovered",
            method="rest_trades",
            detected_ms=w.detected_ms,
            recovered_ms=ts_recv // 1_000_000,
            ts_recv=ts_recv,
        )
