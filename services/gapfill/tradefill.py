"""The gap filler's trade backfill: the I/O shell around :mod:`.trades`.

Follows the ``trade.`` stream and the connector's Gaps and BookStates; a trade-channel Gap
(its ``reason`` names trades: its markets), a book Gap or a disconnect BookState (the
connection was lost: every market), or a connector's new epoch (a new process: every
market) opens a window. When it is due, ``/markets/trades`` is asked for exactly that window
(one call without ``ticker`` when many markets are affected), retried through
:mod:`shared.retry`; the trades not seen on the bus are published as ``Trade(source="rest")``
and the window as a Gap "recovered" with method ``rest_trades`` (``kxfeed gaps`` shows it).
Both go through the worker's durable publisher: journaled before they are published.

A checkpoint file (:mod:`.checkpoint`, saved every second and after each window) lets a
restarted gap filler cover its own downtime: one window for every market from the newest trade
it had accounted for. Trades of that window already in the database are not published again;
one the bus carried but the writer has not stored yet may be (the writer keeps one row per
``trade_id`` and counts the rest as duplicates).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from shared.backoff import Backoff
from shared.kalshi import parse
from shared.kalshi.rest import RestAuthError, RestError, RestNotFound
from shared.kalshi.rest_models import RestTrade
from shared.log import BurstLog
from shared.messages import BookState, Gap, Message, Trade
from shared.retry import GaveUp, Retry, RetryEvent, RetryPolicy, retrying
from shared.units import UnitError

from . import checkpoint
from . import metrics as M
from .trades import RESTART, SeenTrade, TradeLedger, Window

if TYPE_CHECKING:
    from shared.kalshi.rest import RestClient

_TICK_S = 0.1
#: More markets than this in a window: one call for every market, filtered here (Kalshi pages
#: all trades of the window once, rather than once per market).
_PER_MARKET_MAX = 4
#: Attempts at one window's fetch (the REST client retries each request itself as well).
_ATTEMPTS = 3
#: The checkpoint is saved at least this often while trades flow.
_SAVE_S = 1.0


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
        state: Path | None = None,
        stored: Callable[[list[str]], Awaitable[set[str]]] | None = None,
    ) -> None:
        self.rest = rest
        self.worker_id = worker_id
        self.burst = burst
        self.publish = publish
        self.state = state
        self.stored = stored
        # Before any trade is seen, a window starts when this process started.
        self.ledger = TradeLedger(int(max_window_s * 1000), started_ms=time.time_ns() // 1_000_000)
        self.saved: checkpoint.Checkpoint | None = None
        self.saved_at = float("-inf")
        self.counts = dict.fromkeys(
            ("trades_backfilled", "trade_windows", "trade_failures", "checkpoint_failures"), 0
        )

    # ---- the checkpoint --------------------------------------------------------------------
    def resume(self) -> None:
        """At start: cover the downtime of a previous process, if there was one."""
        if self.state is None:
            return
        cp, existed = checkpoint.read(self.state)
        if not existed:
            return  # a first start: nothing came before it
        now_ms = time.time_ns() // 1_000_000
        if cp is None:  # torn or foreign: all we may assume is the longest window we fetch
            M.CHECKPOINTS.labels("torn").inc()
            self.burst.event(
                "trade-checkpoint-torn", "trade checkpoint unreadable: backfilling the longest window",
                path=str(self.state), max_window_s=self.ledger.max_window_ms / 1000,
            )  # fmt: skip
            cp = checkpoint.Checkpoint(now_ms - self.ledger.max_window_ms, None, {})
        else:
            M.CHECKPOINTS.labels("resumed").inc()
        self.ledger.resume(cp, now_ms, time.monotonic())
        self.burst.event(
            "trade-window",
            "trades may be missed: backfill window opened",
            reason=RESTART,
            markets="all",
            since_ms=cp.resume_ms,
        )

    async def save(self, now: float, *, force: bool = False) -> None:
        """Write the checkpoint when it changed (at most every ``_SAVE_S`` unless forced)."""
        if self.state is None or (not force and now - self.saved_at < _SAVE_S):
            return
        cp = self.ledger.checkpoint()
        if cp == self.saved:
            return
        try:
            await asyncio.to_thread(checkpoint.write, self.state, cp)
        except OSError as exc:  # a full disk: the next save tries again; the feed goes on
            M.CHECKPOINTS.labels("failed").inc()
            self.counts["checkpoint_failures"] += 1
            self.burst.event("trade-checkpoint-failed", "trade checkpoint not saved", error=str(exc)[:300])
            return
        self.saved, self.saved_at = cp, now

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
                self.ledger.done(w)
                await self.save(time.monotonic(), force=True)
            await self.save(time.monotonic())

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
        if RESTART in w.reason:  # this process did not see the bus of its downtime: the store did
            missing = await self._unstored(missing)
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

    async def _unstored(self, trades: list[SeenTrade]) -> list[SeenTrade]:
        if self.stored is None or not trades:
            return trades
        try:
            have = await self.stored([t.trade_id for t in trades])
        except (SQLAlchemyError, OSError) as exc:  # no database (yet): publish all, the writer dedups
            self.burst.event("trade-stored-check-failed", "stored trades not checked", error=str(exc)[:300])
            return trades
        for t in trades:
            if t.trade_id in have:
                self.ledger.seen(t, time.monotonic(), live=False)
        return [t for t in trades if t.trade_id not in have]

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
