"""The connector against the real exchange simulator over a real WebSocket and a real bus.

Each test runs the simulator, a bus proxy and the connector worker in one event
loop, injects one fault, and at a quiet moment (``sim.pause()``) checks that the
books rebuilt from the bus equal the exchange's ground truth.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from shared.bus import Publisher
from shared.control import arequest
from shared.journal import read
from shared.messages import BATCH_DECODER, BookDelta, BookSnapshot, BookState, Control, Gap, MarketMeta

from .test_connector_support import channel_sid, metric, stack


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_books_equal_truth_and_everything_is_journaled(tmp_path: Path) -> None:
    async def body() -> None:
        async with stack(tmp_path) as st:
            await asyncio.sleep(1.0)
            await st.settle()
            n = st.assert_books_match_truth()
            assert n >= 8
            metas = {m.ticker for m in st.tap.of(MarketMeta)}
            assert set(st.worker.markets.markets) <= metas
            assert all(m.price_ranges for m in st.tap.of(MarketMeta))
            deltas = st.tap.of(BookDelta)
            assert len(deltas) > 50
            assert all(d.ts_exch and d.ts_recv and d.conn for d in deltas)
        # Every durable message on the bus was journaled first.
        journaled = []
        for rec in read(tmp_path / "journal" / "connector"):
            journaled.extend(BATCH_DECODER.decode(rec.payload))
        on_disk = {(m.kind, m.seq) for m in journaled}
        published = {(m.kind, m.seq) for m in st.tap.msgs if m.durable and m.pub == "connector"}
        assert published and published <= on_disk

    run(body())


def test_disconnect_reconnects_and_books_equal_truth(tmp_path: Path) -> None:
    async def body() -> None:
        async with stack(tmp_path) as st:
            await asyncio.sleep(0.5)
            lost = metric("kxfeed_ws_reconnects_total", reason="connection_lost")
            first_conn = st.worker.session.conn  # type: ignore[union-attr]
            st.sim.faults.inject("disconnect")
            await st.until(
                lambda: st.connected() and st.worker.session.conn != first_conn,  # type: ignore[union-attr]
                10.0,
                "reconnect",
            )
            assert metric("kxfeed_ws_reconnects_total", reason="connection_lost") - lost == 1
            stale = [s for s in st.tap.of(BookState) if s.reason == "disconnect" and not s.valid]
            assert {s.ticker for s in stale} >= set(st.worker.markets.markets)  # every book was marked
            await asyncio.sleep(0.5)
            await st.settle()
            st.assert_books_match_truth()
            # The new connection's snapshots carry the new conn id.
            assert {m.conn for m in st.tap.of(BookSnapshot)} >= {first_conn, st.worker.session.conn}  # type: ignore[union-attr]

    run(body())


def test_gap_recovered_in_band(tmp_path: Path) -> None:
    async def body() -> None:
        async with stack(tmp_path) as st:
            await asyncio.sleep(0.3)
            sid = st.book_sid()
            resubs = metric("kxfeed_ws_resubscribes_total", reason="resync_timeout")
            gaps = metric("kxfeed_ws_gaps_total", reason="seq_gap")
            recoveries = metric("kxfeed_ws_gap_recovery_seconds_count")
            ages = metric("kxfeed_ws_message_age_seconds_count")
            st.sim.faults.inject("gap", sid=sid, count=3)
            await st.until(lambda: any(g.status == "recovered" for g in st.tap.of(Gap)), 10.0, "gap recovery")
            opened = [g for g in st.tap.of(Gap) if g.status == "open"]
            closed = [g for g in st.tap.of(Gap) if g.status == "recovered"]
            assert opened[0].reason == "seq_gap" and opened[0].sid == sid
            assert opened[0].received == opened[0].expected + 3
            assert set(opened[0].tickers) <= set(st.worker.markets.markets)
            assert closed[0].method == "get_snapshot" and closed[0].recovered_ms >= closed[0].detected_ms
            invalid = {s.ticker for s in st.tap.of(BookState) if not s.valid and s.reason == "seq_gap"}
            valid = {s.ticker for s in st.tap.of(BookState) if s.valid}
            assert invalid and invalid <= valid
            # The session and its Recovery only count; the worker exported it (the same _flush
            # that published the recovered Gap observed its recovery time).
            assert metric("kxfeed_ws_gaps_total", reason="seq_gap") - gaps >= 1
            assert metric("kxfeed_ws_gap_recovery_seconds_count") - recoveries >= 1
            await st.until(lambda: metric("kxfeed_ws_message_age_seconds_count") > ages, 10.0, "ages")
            assert (
                metric("kxfeed_ws_resubscribes_total", reason="resync_timeout") == resubs
            )  # in band, no resubscribe
            assert st.book_sid() == sid
            await st.settle()
            st.assert_books_match_truth()

    run(body())


def test_duplicates_dropped_and_counted(tmp_path: Path) -> None:
    async def body() -> None:
        async with stack(tmp_path) as st:
            await asyncio.sleep(0.3)
            dups = metric("kxfeed_ws_duplicates_total")
            st.sim.faults.inject("duplicate", sid=st.book_sid(), count=5)
            await st.until(lambda: metric("kxfeed_ws_duplicates_total") - dups >= 5, 10.0, "duplicates")
            await st.settle()
            st.assert_books_match_truth()
            assert not [g for g in st.tap.of(Gap)]

    run(body())


def test_error25_resubscribes(tmp_path: Path) -> None:
    async def body() -> None:
        async with stack(tmp_path) as st:
            await asyncio.sleep(0.3)
            sid = st.book_sid()
            before = metric("kxfeed_ws_resubscribes_total", reason="error_25")
            st.sim.faults.inject("error25", sid=sid)
            await st.until(lambda: st.book_sid() != sid, 10.0, "a new book sid")
            assert metric("kxfeed_ws_resubscribes_total", reason="error_25") - before == 1
            await st.until(lambda: any(g.status == "recovered" for g in st.tap.of(Gap)), 10.0, "gap recovery")
            g = next(g for g in st.tap.of(Gap) if g.status == "recovered")
            assert (g.reason, g.method, g.sid) == ("error_25", "resubscribe", sid)
            await st.settle()
            st.assert_books_match_truth()

    run(body())


def test_stall_detected_within_timeout(tmp_path: Path) -> None:
    async def body() -> None:
        async with stack(tmp_path, sim={"ping_interval_s": 0.2}, connector={"stale_after_s": 1.0}) as st:
            await asyncio.sleep(0.3)
            stale = metric("kxfeed_ws_reconnects_total", reason="stale")
            first = st.worker.session.conn  # type: ignore[union-attr]
            st.sim.faults.inject("stall", seconds=30)
            t0 = time.monotonic()
            # Detected by the staleness rule (reason="stale"), never before stale_after_s; how long
            # after is the loaded machine's business: a roomy deadline, no upper bound asserted.
            await st.until(
                lambda: metric("kxfeed_ws_reconnects_total", reason="stale") > stale, 30.0, "stall detection"
            )
            took = time.monotonic() - t0
            assert took >= 0.9, took
            await st.until(lambda: st.connected() and st.worker.session.conn != first, 10.0, "reconnect")  # type: ignore[union-attr]
            await st.settle()
            st.assert_books_match_truth()

    run(body())


def test_quiet_market_with_pings_is_alive_and_missing_pings_are_not(tmp_path: Path) -> None:
    async def body() -> None:
        async with stack(tmp_path, sim={"ping_interval_s": 0.2}, connector={"stale_after_s": 1.0}) as st:
            st.sim.pause()  # no market activity: only server pings
            stale = metric("kxfeed_ws_reconnects_total", reason="stale")
            await asyncio.sleep(2.0)
            assert metric("kxfeed_ws_reconnects_total", reason="stale") == stale
            st.sim.faults.inject("no_ping", seconds=30)
            await st.until(
                lambda: metric("kxfeed_ws_reconnects_total", reason="stale") > stale, 5.0, "dead link"
            )

    run(body())


def test_auth_failure_reported_and_retried(tmp_path: Path) -> None:
    async def body() -> None:
        async with stack(tmp_path, start=False) as st:
            failures = metric("kxfeed_ws_auth_failures_total")
            auth = metric("kxfeed_ws_reconnects_total", reason="auth")
            st.sim.faults.inject("auth401", count=2)
            t0 = time.monotonic()
            await st.until(st.connected, 10.0, "connect after refusals")
            assert metric("kxfeed_ws_auth_failures_total") - failures == 2
            assert metric("kxfeed_ws_reconnects_total", reason="auth") - auth == 2
            # Backed off (auth_backoff_s=0.3, jittered 0.75..1.0) rather than spinning.
            assert time.monotonic() - t0 >= 2 * 0.3 * 0.75

    run(body())


def test_malformed_frames_counted_nothing_else_disturbed(tmp_path: Path) -> None:
    async def body() -> None:
        async with stack(tmp_path) as st:
            await asyncio.sleep(0.3)
            json_bad = metric("kxfeed_ws_bad_frames_total", reason="json")
            schema_bad = metric("kxfeed_ws_bad_frames_total", reason="schema")
            unknown = metric("kxfeed_ws_unknown_types_total", type="kxfeed_sim_unknown")
            padding = metric("kxfeed_ws_unknown_types_total", type="kxfeed_sim_padding")
            conn = st.worker.session.conn  # type: ignore[union-attr]
            st.sim.faults.inject("malformed", count=2)  # every variant, twice: json, types, unknown, 2 MB
            await st.until(
                lambda: metric("kxfeed_ws_unknown_types_total", type="kxfeed_sim_padding") - padding == 2,
                10.0,
                "malformed frames",
            )
            assert metric("kxfeed_ws_bad_frames_total", reason="json") - json_bad == 2
            assert metric("kxfeed_ws_bad_frames_total", reason="schema") - schema_bad == 2
            assert metric("kxfeed_ws_unknown_types_total", type="kxfeed_sim_unknown") - unknown == 2
            assert st.worker.session.conn == conn  # type: ignore[union-attr]
            await st.settle()
            assert not st.tap.of(Gap)
            st.assert_books_match_truth()

    run(body())


def test_lifecycle_adds_created_and_removes_settled(tmp_path: Path) -> None:
    async def body() -> None:
        async with stack(tmp_path, sim={"lifecycle_every": 30, "rate": 300.0}) as st:
            initial = set(st.worker.markets.markets)
            added_seen: set[str] = set()
            removed_seen: set[str] = set()

            def changed() -> bool:
                now = set(st.worker.markets.markets)
                added_seen.update(now - initial)
                removed_seen.update(initial - now)
                return bool(added_seen) and bool(removed_seen)

            await st.until(changed, 15.0, "a market added and one removed by lifecycle")
            s = st.worker.session
            assert s is not None
            await st.until(lambda: bool(added_seen & s.table.markets()), 5.0, "added market subscribed")
            assert not (removed_seen & s.table.markets())
            t = sorted(added_seen & set(st.worker.markets.markets))[0]
            # The exchange agrees: the connection's book subscription holds the added market, not the
            # removed. (The update_subscription commands are in flight when the connector's own table
            # changes: wait for the exchange to have taken them.)
            (conn,) = st.sim.hub.conns.values()

            def exchange_agrees() -> bool:
                on_exchange = set(conn.session.by_channel["orderbook_delta"].markets)
                return t in on_exchange and not (removed_seen & on_exchange)

            await st.until(exchange_agrees, 5.0, "exchange took the change")
            await st.until(lambda: t in {m.ticker for m in st.tap.of(MarketMeta)}, 5.0, "added's metadata")
            await st.until(lambda: t in st.tap.books, 5.0, "snapshot of the added market")
            await st.settle()
            st.assert_books_match_truth()

    run(body())


def test_snapshot_requests_over_bus_and_control_socket(tmp_path: Path) -> None:
    async def body() -> None:
        async with stack(tmp_path) as st:
            await asyncio.sleep(0.3)
            t = sorted(st.worker.markets.markets)[0]
            before = len([m for m in st.tap.of(BookSnapshot) if m.ticker == t])
            pub = Publisher(st.tap.sub._sock.context, st.cfg.bus.xsub, "test-orderbook")  # type: ignore[arg-type]
            assert await pub.wait_for_subscriber("ctl.connector")
            pub.publish(Control(target="connector", cmd="snapshot", tickers=[t], ts_recv=time.time_ns()))
            await st.until(
                lambda: len([m for m in st.tap.of(BookSnapshot) if m.ticker == t]) > before,
                5.0,
                "bus snapshot",
            )
            pub.close(0)
            endpoint = st.cfg.connector.control
            reply = await arequest(endpoint, "snapshot", {"tickers": []})
            assert sorted(reply["requested"]) == sorted(st.worker.markets.markets)
            subs = await arequest(endpoint, "subscriptions")
            assert subs["markets"] == sorted(st.worker.markets.markets)
            assert {s["channel"] for s in subs["subscriptions"]} == {
                "orderbook_delta",
                "ticker",
                "trade",
                "market_lifecycle_v2",
            }
            stats = await arequest(endpoint, "stats")
            assert stats["connected"] == 1 and stats["markets"] == len(st.worker.markets.markets)
            await st.settle()
            st.assert_books_match_truth()

    run(body())


def test_use_yes_price_books_still_carry_no_prices(tmp_path: Path) -> None:
    async def body() -> None:
        async with stack(tmp_path, connector={"use_yes_price": True}) as st:
            (conn,) = st.sim.hub.conns.values()
            assert conn.session.by_channel["orderbook_delta"].yes_price  # Kalshi was asked for the YES axis
            await asyncio.sleep(0.8)
            await st.settle()
            st.assert_books_match_truth()  # truth keeps NO bids in NO prices
            assert any(d.side == "no" for d in st.tap.of(BookDelta))

    run(body())


def test_trade_gap_counted_and_published_naming_channel_and_markets(tmp_path: Path) -> None:
    async def body() -> None:
        async with stack(tmp_path) as st:
            await asyncio.sleep(0.3)
            tsid = channel_sid(st.worker, "trade")
            gaps = metric("kxfeed_ws_gaps_total", reason="trade_seq")
            st.sim.faults.inject("gap", sid=tsid, count=2)

            def trade_gaps() -> list[Gap]:
                return [g for g in st.tap.of(Gap) if g.reason == "trade_seq"]

            await st.until(lambda: bool(trade_gaps()), 20.0, "a trade gap")
            (g,) = trade_gaps()
            assert g.sid == tsid and g.status == "open" and g.received == g.expected + 2
            assert g.tickers == []  # not books (see services/connector/streams.py)
            assert metric("kxfeed_ws_gaps_total", reason="trade_seq") - gaps == 1
            # No book was disturbed by it: nothing INVALID, books still the exchange's.
            await st.settle()
            st.assert_books_match_truth()

    run(body())


def test_a_lifecycle_gap_is_reconciled_over_rest_at_once(tmp_path: Path) -> None:
    """Lost lifecycle frames (a status change, a fee override) cannot be re-asked: the connector
    re-reads every market and event over REST while the connection stays up, republishes each
    market's metadata, and closes the very Gap it opened as recovered by ``rediscover``."""

    async def body() -> None:
        async with stack(tmp_path, sim={"lifecycle_every": 20}) as st:
            await asyncio.sleep(0.3)
            s = st.worker.session
            assert s is not None
            lsid = channel_sid(st.worker, "market_lifecycle_v2")
            connected = metric("kxfeed_ws_reconnects_total", reason="closed")
            st.sim.faults.inject("gap", sid=lsid, count=2)

            def life_gaps(status: str) -> list[Gap]:
                return [g for g in st.tap.of(Gap) if g.reason == "lifecycle_seq" and g.status == status]

            await st.until(lambda: bool(life_gaps("recovered")), 30.0, "the lifecycle gap recovered")
            (opened,) = life_gaps("open")
            (closed,) = life_gaps("recovered")
            assert (closed.conn, closed.sid, closed.expected) == (opened.conn, lsid, opened.expected)
            assert closed.method == "rediscover" and closed.received == opened.expected + 2
            # Every market's metadata came again from REST, after the gap opened.
            after = {m.ticker for m in st.tap.of(MarketMeta) if m.ts_recv >= opened.ts_recv}
            assert set(st.worker.markets.markets) <= after
            assert st.worker.session is s, "recovered in place: the connection stayed up"
            assert metric("kxfeed_ws_reconnects_total", reason="closed") == connected

    run(body())
