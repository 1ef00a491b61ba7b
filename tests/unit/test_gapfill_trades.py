"""The trade backfill's pure core: windows from triggers, dedup by trade id, the cap."""

from __future__ import annotations

from services.gapfill.trades import SeenTrade, TradeLedger, Window

T0 = 1_800_000_000_000  # ms


def ledger(**kw: int | float) -> TradeLedger:
    return TradeLedger(max_window_ms=int(kw.pop("max_window_ms", 600_000)), started_ms=T0, **kw)  # type: ignore[arg-type]


def tr(i: int, ticker: str = "A", ts: int | None = None) -> SeenTrade:
    return SeenTrade(f"t{i}", ticker, T0 + i * 1000 if ts is None else ts)


def test_a_disconnect_window_runs_from_the_newest_trade_seen_to_the_first_after_it() -> None:
    lg = ledger(wait_s=60.0)
    assert lg.seen(tr(1), 0.0) and lg.seen(tr(2, "B"), 0.0)
    assert not lg.seen(tr(2, "B"), 0.0)  # the same id again: a duplicate
    lg.trigger(None, "disconnect", T0 + 2500, 1.0)
    assert lg.due(30.0, T0 + 30_000) == []  # not ended: waiting for the stream (within wait_s)
    lg.seen(tr(9, "A"), 5.0)  # live again
    assert lg.due(5.5, T0 + 9500) == []  # settling: live trades up to the end still arriving
    (w,) = lg.due(6.0, T0 + 10_000)
    assert w == Window(None, "disconnect", T0 + 2000 - 2000, T0 + 9000, T0 + 2500, False)
    assert w.rest_range_s == ((T0 // 1000), (T0 + 9000) // 1000 + 1)
    assert lg.pending == []
    rest = [tr(9), tr(8, "B"), tr(5), tr(2, "B"), tr(1), tr(0, ts=T0 - 5000), tr(10, ts=T0 + 9001)]
    # Seen ids (1, 2, 9) and trades outside the window (0, 10) are not missing; oldest first.
    assert [t.trade_id for t in lg.missing(w, rest)] == ["t5", "t8"]


def test_a_trade_gap_covers_its_markets_and_starts_at_their_newest_trade() -> None:
    lg = ledger()
    lg.seen(tr(1, "A"), 0.0)
    lg.seen(tr(3, "B"), 0.0)
    lg.seen(tr(2, "C"), 0.0)
    lg.trigger(["A", "C"], "trade_seq_gap", T0 + 4000, 1.0, conn=3, sid=7, expected=41)
    lg.seen(tr(6, "B"), 2.0)
    (w,) = lg.due(3.0, T0 + 7000)
    assert w.tickers == frozenset({"A", "C"}) and (w.conn, w.sid, w.expected) == (3, 7, 41)
    assert (w.start_ms, w.end_ms) == (T0 + 2000 - 2000, T0 + 6000)
    rest = [tr(5, "A"), tr(4, "B"), tr(4, "C", ts=T0 + 4500)]
    assert [t.trade_id for t in lg.missing(w, rest)] == ["t4", "t5"]
    assert [t.ticker for t in lg.missing(w, rest)] == ["C", "A"]


def test_no_trade_after_the_trigger_ends_the_window_when_fetched() -> None:
    lg = ledger(wait_s=5.0)
    lg.seen(tr(1), 0.0)
    lg.trigger(None, "restart", T0 + 2000, 10.0)
    assert lg.due(14.9, T0 + 6900) == []
    (w,) = lg.due(15.0, T0 + 7000)
    assert (w.start_ms, w.end_ms, w.capped) == (T0 - 1000, T0 + 7000, False)


def test_triggers_before_the_stream_is_back_widen_one_window() -> None:
    lg = ledger()
    lg.seen(tr(1, "A"), 0.0)
    lg.seen(tr(5, "B"), 0.0)
    lg.trigger(["B"], "trade_seq_gap", T0 + 5500, 1.0)
    lg.trigger(None, "disconnect", T0 + 5600, 1.1)
    lg.trigger(None, "disconnect", T0 + 5700, 1.2)
    assert len(lg.pending) == 1
    p = lg.pending[0]
    assert p.tickers is None and p.reason == "trade_seq_gap+disconnect"
    lg.seen(tr(8, "A"), 2.0)
    lg.trigger(None, "restart", T0 + 9000, 2.5)  # after the stream came back: a window of its own
    assert len(lg.pending) == 2 and lg.pending[1].start_ms == T0 + 8000 - 2000


def test_a_long_window_is_capped_to_max_window() -> None:
    lg = ledger(max_window_ms=60_000)
    lg.seen(tr(0), 0.0)
    lg.trigger(None, "disconnect", T0 + 1000, 1.0)
    lg.seen(tr(600), 2.0)  # ten minutes later
    (w,) = lg.due(5.0, T0 + 601_000)
    assert w.capped and (w.start_ms, w.end_ms) == (T0 + 600_000 - 60_000, T0 + 600_000)


def test_backfilled_trades_do_not_end_a_window_and_ids_are_bounded() -> None:
    lg = ledger(max_ids=3)
    lg.trigger(None, "disconnect", T0, 0.0)
    assert lg.seen(tr(1), 0.5, live=False)
    assert lg.pending[0].end_ms is None  # our own REST trade is no sign the stream is back
    for i in range(2, 6):
        lg.seen(tr(i), 1.0, live=False)
    assert list(lg.ids) == ["t3", "t4", "t5"]  # the oldest forgotten first
    assert lg.newest_ms["A"] == T0 + 5000


def test_ids_are_forgotten_past_the_horizon_unless_a_window_reaches_back() -> None:
    lg = ledger(id_horizon_ms=10_000)
    lg.seen(tr(1), 0.0)  # at T0 + 1000
    lg.trigger(None, "disconnect", T0 + 1_500, 0.5)  # a window from T0 + 1000 - overlap
    lg.seen(SeenTrade("late", "A", T0 + 60_000), 1.0)  # far past the horizon: the window holds t1
    assert "t1" in lg.ids
    (w,) = lg.due(2.5, T0 + 61_000)  # handed out for fetching: still held
    lg.seen(SeenTrade("later", "A", T0 + 61_000), 3.0)
    assert "t1" in lg.ids
    lg.done(w)  # published: nothing reaches back to it any more
    lg.seen(SeenTrade("last", "A", T0 + 62_000), 4.0)
    assert list(lg.ids) == ["late", "later", "last"]


def test_a_new_connector_epoch_is_a_restart_the_first_is_not() -> None:
    lg = ledger()
    assert not lg.publisher("connector", 100)
    assert not lg.publisher("connector", 100)
    assert lg.publisher("connector", 200)
    assert not lg.publisher("connector-2", 5)  # another connector's first message


def test_a_long_outage_is_fetched_at_wait_s_and_again_once_the_connection_is_back() -> None:
    lg = ledger(wait_s=5.0, settle_s=1.0)
    lg.seen(tr(1), 0.0)
    lg.trigger(None, "disconnect", T0 + 1500, 1.0, conn=3)
    (w1,) = lg.due(6.0, T0 + 6000)  # nothing back yet: what REST has so far
    assert (w1.start_ms, w1.end_ms) == (T0 - 1000, T0 + 6000)
    (p,) = lg.pending  # the rest of the outage
    assert p.follow_up and p.start_ms == T0 + 6000 - 2000 and p.conn == 3
    assert lg.due(60.0, T0 + 60_000) == []  # still down: no timeout for a follow-up
    lg.back(61.0)  # a valid book: the connection is back, but no live trade yet
    assert lg.due(65.9, T0 + 65_900) == []
    (w2,) = lg.due(66.0, T0 + 66_000)
    assert (w2.start_ms, w2.end_ms) == (T0 + 4000, T0 + 66_000) and lg.pending == []


def test_a_live_trade_after_the_connection_is_back_still_ends_the_window() -> None:
    lg = ledger(wait_s=5.0)
    lg.seen(tr(1), 0.0)
    lg.trigger(None, "disconnect", T0 + 1500, 1.0)
    lg.back(2.0)
    lg.seen(tr(3), 3.0)
    (w,) = lg.due(4.0, T0 + 4000)
    assert w.end_ms == T0 + 3000 and lg.pending == []
