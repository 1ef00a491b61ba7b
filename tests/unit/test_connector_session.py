"""The connector's session core: subscriptions, sequence checks, gaps, recovery, errors."""

from __future__ import annotations

from shared.messages import BookDelta, BookSnapshot, BookState, Gap, MarketLifecycle, Ticker, Trade

from .test_connector_support import TS_MS, Script, counted, delta, kinds, snap

A, B, C = "KXA-26JAN01-X", "KXB-26JAN01-Y", "KXC-26JAN01-Z"


def booted(markets: list[str] | None = None, **kw: object) -> Script:
    sc = Script(markets or [A, B], **kw)  # type: ignore[arg-type]
    sc.boot()
    return sc


def with_books(sc: Script, *tickers: str) -> int:
    sid = sc.book_sid(tickers[0])
    out = sc.feed(
        *[snap(sid, i + 1, t, yes=[("0.40", "10.00")], no=[("0.55", "5.00")]) for i, t in enumerate(tickers)]
    )
    assert kinds(out) == ["snap"] * len(tickers)
    return sid


def test_start_subscribes_shards_and_lifecycle() -> None:
    sc = Script([C, A, B], max_markets=2)
    cmds = sc.commands()
    assert [c["cmd"] for c in cmds] == ["subscribe"] * 3
    assert cmds[0]["params"] == {"channels": ["orderbook_delta", "ticker", "trade"], "market_tickers": [A, B]}
    assert cmds[1]["params"] == {"channels": ["orderbook_delta", "ticker", "trade"], "market_tickers": [C]}
    assert cmds[2]["params"] == {"channels": ["market_lifecycle_v2"]}
    assert len({c["id"] for c in cmds}) == 3
    assert not sc.s.subscribed()
    sc.confirm(cmds)
    assert sc.s.subscribed()
    assert len(sc.s.table.by_sid) == 7  # 2 shards x 3 channels + lifecycle
    assert sc.s.table.book_sub(A) is sc.s.table.book_sub(B) is not sc.s.table.book_sub(C)


def test_use_yes_price_requested_on_book_channel_only() -> None:
    sc = Script([A], use_yes_price=True)
    cmds = sc.commands()
    assert cmds[0]["params"]["use_yes_price"] is True
    assert "use_yes_price" not in cmds[1]["params"]


def test_snapshot_then_deltas_published_in_order() -> None:
    sc = booted()
    sid = with_books(sc, A, B)
    out = sc.feed(
        delta(sid, 3, A, "0.40", "-4.00"),
        delta(sid, 4, B, "0.41", "2.50"),
        delta(sid, 5, A, "0.55", "1", "no"),
    )
    assert kinds(out) == ["delta"] * 3
    d0, d1, d2 = out
    assert isinstance(d0, BookDelta) and (d0.ticker, d0.price, d0.delta, d0.xseq, d0.conn) == (
        A,
        4000,
        -400,
        3,
        7,
    )
    assert isinstance(d2, BookDelta) and (d2.side, d2.price, d2.delta) == ("no", 5500, 100)
    assert sc.s.books[A].yes == {4000: 600} and sc.s.books[A].no == {5500: 600}
    assert sc.s.books[B].yes == {4000: 1000, 4100: 250}
    assert d1.ts_exch == TS_MS - 5


def test_level_removed_at_zero() -> None:
    sc = booted()
    sid = with_books(sc, A, B)
    sc.feed(delta(sid, 3, A, "0.40", "-10.00"))
    assert 4000 not in sc.s.books[A].yes


def test_duplicate_dropped_and_counted() -> None:
    sc = booted()
    sid = with_books(sc, A, B)
    before = counted(sc.s, "duplicates")
    out = sc.feed(
        delta(sid, 3, A, "0.40", "-1.00"),
        delta(sid, 3, A, "0.40", "-1.00"),
        delta(sid, 2, A, "0.40", "-1.00"),
    )
    assert len(out) == 1
    assert counted(sc.s, "duplicates") - before == 2
    assert sc.s.books[A].yes == {4000: 900}


def test_gap_marks_every_market_of_the_sid_and_recovers_in_band() -> None:
    sc = booted()
    sid = with_books(sc, A, B)
    gaps_before = counted(sc.s, "gaps", "seq_gap")
    out = sc.feed(delta(sid, 5, A, "0.40", "-1.00"), now=1.0)  # expected 3
    gap = [m for m in out if isinstance(m, Gap)]
    states = [m for m in out if isinstance(m, BookState)]
    assert len(gap) == 1 and (gap[0].sid, gap[0].expected, gap[0].received, gap[0].status) == (
        sid,
        3,
        5,
        "open",
    )
    assert gap[0].tickers == [A, B] and gap[0].reason == "seq_gap" and gap[0].conn == 7
    assert sorted((s.ticker, s.valid, s.reason) for s in states) == [
        (A, False, "seq_gap"),
        (B, False, "seq_gap"),
    ]
    assert not [m for m in out if isinstance(m, BookDelta)]  # the delta after the gap is not trusted
    assert counted(sc.s, "gaps", "seq_gap") - gaps_before == 1
    cmds = sc.commands()
    assert cmds == [
        {
            "id": cmds[0]["id"],
            "cmd": "update_subscription",
            "params": {"sids": [sid], "action": "get_snapshot", "market_tickers": [A, B]},
        }
    ]
    # Deltas before each market's new snapshot are discarded; seq checking resumes from the gap.
    discarded = counted(sc.s, "discarded", "awaiting_snapshot")
    out = sc.feed(delta(sid, 6, B, "0.40", "-1.00"), now=1.1)
    assert out == [] and counted(sc.s, "discarded", "awaiting_snapshot") - discarded == 1
    out = sc.feed(snap(sid, 7, A, yes=[("0.30", "1.00")]), delta(sid, 8, A, "0.30", "1.00"), now=1.2)
    assert kinds(out) == ["snap", "bookstate", "delta"]
    assert isinstance(out[1], BookState) and out[1].valid and out[1].ticker == A
    out = sc.feed(snap(sid, 9, B), now=1.3)
    assert kinds(out) == ["snap", "bookstate", "gap"]
    closed = out[2]
    assert isinstance(closed, Gap) and closed.status == "recovered" and closed.method == "get_snapshot"
    assert (closed.expected, closed.received, closed.recovered_ms) == (3, 5, TS_MS)
    assert sc.s.books[B].yes == {} and sc.s.books[A].yes == {3000: 200}


def test_delta_without_snapshot_is_a_market_gap() -> None:
    sc = booted()
    sid = sc.book_sid(A)
    sc.feed(snap(sid, 1, A))
    out = sc.feed(delta(sid, 2, B, "0.40", "1.00"))
    assert kinds(out) == ["bookstate", "gap"]
    g = out[1]
    assert (
        isinstance(g, Gap)
        and g.tickers == [B]
        and g.reason == "no_snapshot"
        and (g.expected, g.received) == (2, 2)
    )
    assert sc.commands()[0]["params"] == {"sids": [sid], "action": "get_snapshot", "market_tickers": [B]}
    # A is untouched.
    assert kinds(sc.feed(delta(sid, 3, A, "0.40", "1.00"))) == ["delta"]


def test_negative_level_is_a_market_gap() -> None:
    sc = booted()
    sid = with_books(sc, A, B)
    out = sc.feed(delta(sid, 3, A, "0.40", "-10.01"))
    assert kinds(out) == ["bookstate", "gap"] and out[1].reason == "negative_level"  # type: ignore[union-attr]
    assert sc.s.books[A].yes == {4000: 1000}  # not applied
    assert kinds(sc.feed(delta(sid, 4, B, "0.40", "-10.00"))) == ["delta"]


def test_resync_timeout_resubscribes_with_a_new_sid() -> None:
    sc = booted(resync_timeout_s=5.0)
    sid = with_books(sc, A, B)
    sc.feed(delta(sid, 9, A, "0.40", "1.00"), now=10.0)
    sc.commands()
    sc.s.tick(14.0, 0)
    assert sc.commands() == []
    before = counted(sc.s, "resubscribes", "resync_timeout")
    sc.s.tick(15.5, 0)
    cmds = sc.commands()
    assert [c["cmd"] for c in cmds] == ["unsubscribe", "subscribe"]
    assert cmds[0]["params"] == {"sids": [sid]}
    assert cmds[1]["params"] == {"channels": ["orderbook_delta"], "market_tickers": [A, B]}
    assert counted(sc.s, "resubscribes", "resync_timeout") - before == 1
    sc.confirm(cmds, now=15.6)
    new = sc.book_sid(A)
    assert new != sid
    retired = counted(sc.s, "discarded", "retired_sid")
    assert sc.feed(delta(sid, 10, A, "0.40", "1.00")) == []
    assert counted(sc.s, "discarded", "retired_sid") - retired == 1
    out = sc.feed(snap(new, 1, A), snap(new, 2, B), now=15.7)
    assert kinds(out) == ["snap", "bookstate", "snap", "bookstate", "gap"]
    assert out[-1].method == "resubscribe"  # type: ignore[union-attr]


def test_terminal_error_resubscribes_at_once() -> None:
    sc = booted()
    sid = with_books(sc, A, B)
    out = sc.feed(
        {"type": "error", "sid": sid, "msg": {"code": 25, "msg": "Subscription buffer overflow"}}, now=2.0
    )
    gaps = [m for m in out if isinstance(m, Gap)]
    assert len(gaps) == 1 and gaps[0].reason == "error_25" and gaps[0].method == "resubscribe"
    assert {m.ticker for m in out if isinstance(m, BookState)} == {A, B}
    cmds = sc.commands()
    assert [c["cmd"] for c in cmds] == ["subscribe"]  # the sid is already gone: no unsubscribe
    sc.confirm(cmds)
    new = sc.book_sid(A)
    out = sc.feed(snap(new, 1, A), snap(new, 2, B))
    assert kinds(out)[-1] == "gap" and out[-1].status == "recovered"  # type: ignore[union-attr]


def test_terminal_error_on_ticker_sid_resubscribes_that_channel() -> None:
    sc = booted()
    tsid = sc.sids["ticker"][0]
    sc.feed({"type": "error", "sid": tsid, "msg": {"code": 10, "msg": "Channel error"}})
    cmds = sc.commands()
    assert [c["cmd"] for c in cmds] == ["subscribe"]
    assert cmds[0]["params"]["channels"] == ["ticker"]


def test_non_terminal_error_is_counted_not_acted_on() -> None:
    sc = booted()
    before = counted(sc.s, "command_errors", "18")
    sc.feed({"type": "error", "msg": {"code": 18, "msg": "Command timeout"}})
    assert sc.commands() == []
    assert counted(sc.s, "command_errors", "18") - before == 1


def test_malformed_frames_counted_and_stream_unharmed() -> None:
    sc = booted()
    sid = with_books(sc, A, B)
    json_bad = counted(sc.s, "bad_frames", "json")
    schema_bad = counted(sc.s, "bad_frames", "schema")
    unknown = counted(sc.s, "unknown_types", "cfbenchmarks_value")
    out = sc.feed(
        b"{not json",
        b'{"type":"orderbook_delta","sid":1,"seq":3,"msg":{"market_ticker":"X"}}',
        b'{"type":"cfbenchmarks_value","sid":9,"msg":{}}',
        b"\xff\xfe",
        b"[1, 2, 3]",
        delta(sid, 4, A, "0.40", "1.00"),
    )
    # The misshapen delta held seq 3 of a market not followed: no gap, nothing lost.
    assert kinds(out) == ["delta"]
    assert counted(sc.s, "bad_frames", "json") - json_bad == 2
    assert counted(sc.s, "bad_frames", "schema") - schema_bad == 2
    assert counted(sc.s, "unknown_types", "cfbenchmarks_value") - unknown == 1
    assert "cfbenchmarks_value" in sc.s.faults.unknown_types


def test_bad_units_in_a_delta_break_that_market_only() -> None:
    sc = booted()
    sid = with_books(sc, A, B)
    before = counted(sc.s, "bad_frames", "units")
    out = sc.feed(delta(sid, 3, A, "0.40001", "1.00"), delta(sid, 4, B, "0.40", "1.00"))
    assert kinds(out) == ["bookstate", "gap", "delta"]
    assert out[1].reason == "bad_delta"  # type: ignore[union-attr]
    assert counted(sc.s, "bad_frames", "units") - before == 1


def test_ticker_trade_lifecycle_published() -> None:
    sc = booted()
    tsid = sc.sids["ticker"][0]
    out = sc.feed(
        {
            "type": "ticker",
            "sid": tsid,
            "msg": {
                "market_ticker": A,
                "market_id": "m",
                "price_dollars": "0.5",
                "yes_bid_dollars": "0.49",
                "yes_ask_dollars": "0.51",
                "ts_ms": TS_MS,
            },
        },
        {
            "type": "trade",
            "sid": sc.sids["trade"][0],
            "msg": {
                "trade_id": "t1",
                "market_ticker": A,
                "yes_price_dollars": "0.5",
                "no_price_dollars": "0.5",
                "count_fp": "3.00",
                "taker_outcome_side": "yes",
            },
        },
        {
            "type": "market_lifecycle_v2",
            "sid": sc.sids["market_lifecycle_v2"][0],
            "seq": 1,
            "msg": {
                "market_ticker": C,
                "event_type": "created",
                "additional_metadata": {"event_ticker": "KXC-26JAN01"},
            },
        },
    )
    assert [type(m) for m in out] == [Ticker, Trade, MarketLifecycle]
    assert [m.ticker for m in sc.s.lifecycle] == [C]  # type: ignore[union-attr]


def test_lifecycle_seq_gap_asks_for_rediscovery() -> None:
    sc = booted()
    lsid = sc.sids["market_lifecycle_v2"][0]
    life = {
        "type": "market_lifecycle_v2",
        "sid": lsid,
        "msg": {"market_ticker": C, "event_type": "activated"},
    }
    sc.feed({**life, "seq": 1}, {**life, "seq": 2})
    assert not sc.s.lifecycle_gaps
    sc.feed({**life, "seq": 4})
    (g,) = sc.s.lifecycle_gaps  # the worker reconciles it over REST and closes this very Gap
    assert (g.sid, g.expected, g.received, g.status) == (lsid, 3, 4, "open")


def test_add_markets_fills_live_shards_then_opens_new_ones() -> None:
    sc = booted([A], max_markets=2)
    added = sc.s.add_markets([B, C], 1.0)
    assert added == [B, C]
    cmds = sc.commands()
    adds = [c for c in cmds if c["cmd"] == "update_subscription"]
    subs = [c for c in cmds if c["cmd"] == "subscribe"]
    assert len(adds) == 3 and all(
        c["params"]["action"] == "add_markets" and c["params"]["market_tickers"] == [B] for c in adds
    )
    assert len(subs) == 1 and subs[0]["params"]["market_tickers"] == [C]
    sc.confirm(cmds, now=1.0)
    sid_ab = sc.book_sid(A)
    assert sc.book_sid(B) == sid_ab and sc.book_sid(C) != sid_ab
    # The added market waits for its snapshot: a delta first is a no_snapshot gap.
    out = sc.feed(snap(sid_ab, 1, A), snap(sid_ab, 2, B))
    assert kinds(out) == ["snap", "snap"]


def test_remove_markets_deletes_and_unsubscribes_empty_shards() -> None:
    sc = booted([A, B, C], max_markets=2)
    sid_c = sc.book_sid(C)
    removed = sc.s.remove_markets([B, C], 1.0, 0)
    assert removed == [B, C]
    cmds = sc.commands()
    deletes = [c for c in cmds if c["cmd"] == "update_subscription"]
    unsubs = [c for c in cmds if c["cmd"] == "unsubscribe"]
    assert len(deletes) == 3 and all(
        c["params"]["action"] == "delete_markets" and c["params"]["market_tickers"] == [B] for c in deletes
    )
    assert len(unsubs) == 1 and sid_c in unsubs[0]["params"]["sids"] and len(unsubs[0]["params"]["sids"]) == 3
    assert sc.s.table.markets() == {A}
    assert sc.feed(delta(sid_c, 1, C, "0.40", "1.00")) == []


def test_control_snapshot_requests_grouped_per_sid() -> None:
    sc = booted([A, B, C], max_markets=2)
    asked = sc.s.request_snapshots([C, A, "NOT-OURS"], "control", 0.0)
    assert asked == [A, C]
    cmds = sc.commands()
    assert sorted((c["params"]["sids"][0], tuple(c["params"]["market_tickers"])) for c in cmds) == sorted(
        [(sc.book_sid(A), (A,)), (sc.book_sid(C), (C,))]
    )
    assert sorted(sc.s.request_snapshots(None, "control", 0.0)) == [A, B, C]


def test_control_snapshot_does_not_invalidate_a_good_book() -> None:
    sc = booted()
    sid = with_books(sc, A, B)
    sc.s.request_snapshots([A], "control", 0.0)
    out = sc.feed(
        delta(sid, 3, A, "0.40", "1.00"),
        snap(sid, 4, A, yes=[("0.40", "11.00")]),
        delta(sid, 5, A, "0.40", "1.00"),
    )
    assert kinds(out) == ["delta", "snap", "delta"]
    assert sc.s.books[A].yes == {4000: 1200}


def test_close_invalidates_and_next_session_revalidates() -> None:
    sc = booted()
    with_books(sc, A)
    sc.s.close(0)
    out = sc.s.take()
    assert [(m.ticker, m.valid, m.reason) for m in out if isinstance(m, BookState)] == [
        (A, False, "disconnect")
    ]
    again = Script([A, B], recovery=sc.recovery)
    again.boot()
    sid = again.book_sid(A)
    out = again.feed(snap(sid, 1, A), snap(sid, 2, B))
    assert kinds(out) == ["snap", "bookstate", "snap"]  # B was never valid, so never re-validated


def test_a_requested_stop_says_shutdown_not_disconnect() -> None:
    sc = booted()
    with_books(sc, A)
    sc.s.close(0, "shutdown")
    assert [(m.ticker, m.reason) for m in sc.s.take() if isinstance(m, BookState)] == [(A, "shutdown")]


def test_missing_initial_snapshots_resubscribe() -> None:
    sc = booted(initial_timeout_s=10.0)
    sid = sc.book_sid(A)
    sc.feed(snap(sid, 1, A), now=1.0)
    sc.s.tick(9.0, 0)
    assert sc.commands() == []
    sc.s.tick(10.5, 0)
    cmds = sc.commands()
    assert [c["cmd"] for c in cmds] == ["unsubscribe", "subscribe"]
    assert cmds[1]["params"]["market_tickers"] == [A, B]


def test_subscribe_without_reply_breaks_the_session() -> None:
    sc = Script([A], command_timeout_s=10.0)
    sc.commands()
    sc.s.tick(5.0, 0)
    assert sc.s.broken == ""
    sc.s.tick(10.5, 0)
    assert sc.s.broken == "command_timeout"


def test_unacknowledged_get_snapshot_is_not_fatal() -> None:
    sc = booted(command_timeout_s=10.0)
    with_books(sc, A, B)
    sc.s.request_snapshots([A], "control", 0.0)
    sc.s.tick(11.0, 0)
    assert sc.s.broken == "" and not sc.s.table.pending


def test_market_not_found_drops_market_and_retries() -> None:
    sc = Script([A, B])
    cmds = sc.commands()
    out = sc.feed(
        {
            "id": cmds[0]["id"],
            "type": "error",
            "msg": {"code": 16, "msg": "Market not found", "market_ticker": B},
        }
    )
    assert out == [] and sc.s.rejected == [B]
    retry = sc.commands()
    assert [c["params"].get("market_tickers") for c in retry] == [[A]]
    sc.confirm([*retry, cmds[1]])
    assert sc.s.subscribed() and sc.s.table.markets() == {A}


def test_market_limit_error_splits_the_subscription_in_two() -> None:
    sc = Script([A, B, C], max_markets=4)
    cmds = sc.commands()
    sc.feed(
        {
            "id": cmds[0]["id"],
            "type": "error",
            "msg": {"code": 26, "msg": "Subscription market limit exceeded"},
        }
    )
    again = sc.commands()
    assert sc.s.table.max_markets == 2
    assert sorted(tuple(c["params"]["market_tickers"]) for c in again) == [(A, B), (C,)]
    sc.confirm([*again, cmds[1]])
    assert sc.s.subscribed() and len({sc.book_sid(t) for t in (A, B, C)}) == 2


def test_subscribe_merged_by_server_is_accepted() -> None:
    sc = Script([A, B, C], max_markets=2)
    cmds = sc.commands()
    replies = []
    for c in cmds:  # the server answers every subscribe with the same sid per channel
        for ch in c["params"]["channels"]:
            replies.append(
                {
                    "id": c["id"],
                    "type": "subscribed",
                    "msg": {
                        "channel": ch,
                        "sid": {"orderbook_delta": 1, "ticker": 2, "trade": 3, "market_lifecycle_v2": 4}[ch],
                    },
                }
            )
    sc.feed(*replies)
    assert sc.s.subscribed()
    assert sc.book_sid(A) == sc.book_sid(C) == 1
    assert sc.s.table.by_sid[1].markets == {A, B, C}
    out = sc.feed(snap(1, 1, A), snap(1, 2, B), snap(1, 3, C))
    assert kinds(out) == ["snap"] * 3
    sc.s.tick(100.0, 0)
    assert sc.commands() == []  # every market has its snapshot: nothing is overdue
    # Replacing the merged sid replaces it for every shard that shares it.
    sc.feed({"type": "error", "sid": 1, "msg": {"code": 10, "msg": "Channel error"}}, now=101.0)
    cmds = sc.commands()
    assert [c["cmd"] for c in cmds] == ["subscribe"]
    assert cmds[0]["params"]["market_tickers"] == [A, B, C]
    sc.feed({"id": cmds[0]["id"], "type": "subscribed", "msg": {"channel": "orderbook_delta", "sid": 9}})
    assert sc.book_sid(A) == sc.book_sid(C) == 9
    assert sorted(sc.s.request_snapshots(None, "control", 102.0)) == [A, B, C]
    assert [c["params"]["sids"] for c in sc.commands()] == [[9]]


def test_yes_price_mode_end_to_end() -> None:
    sc = booted(use_yes_price=True)
    sid = sc.book_sid(A)
    out = sc.feed(snap(sid, 1, A, no=[("0.45", "2.00")]), delta(sid, 2, A, "0.45", "1.00", "no"))
    s, d = out
    assert isinstance(s, BookSnapshot) and s.no == [(5500, 200)]
    assert isinstance(d, BookDelta) and d.price == 5500 and sc.s.books[A].no == {5500: 300}
