"""Hostile frames over a real WebSocket: the connector counts them and keeps its connection.

The simulator's connection is handed frames of our own (``Conn.push``), in the sid's real
sequence where the frame needs one: a count of 10^29, a ``ts_ms`` of 2^70, a ticker ``ts``
of 10^17 s, a trade of 10^23 contracts (each once crashed the connector at bus encode), and
a seq jumping to 10^18.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from services.exchange_sim.connection import Conn
from services.exchange_sim.session import SimSubscription
from shared.messages import Gap

from .test_connector_support import Stack, metric, stack


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def only_conn(st: Stack) -> Conn:
    conns = list(st.sim.hub.conns.values())
    assert len(conns) == 1, conns
    return conns[0]


def sim_sub(conn: Conn, channel: str) -> SimSubscription:
    subs = [s for s in conn.session.subs.values() if s.channel == channel]
    assert subs, channel
    return subs[0]


def frame(**f: Any) -> bytes:
    return json.dumps(f).encode()


async def quiet_exchange(st: Stack) -> None:
    """Nothing generated or in flight: a frame pushed now takes the sid's next seq."""
    st.sim.pause()
    assert await st.sim.drained(10.0)
    await st.tap.quiet(0.3)


def test_out_of_range_numbers_are_counted_and_the_connection_goes_on(tmp_path: Path) -> None:
    async def body() -> None:
        async with stack(tmp_path) as st:
            await asyncio.sleep(0.5)
            session = st.worker.session
            assert session is not None
            first_conn = session.conn
            reconnects = metric("kxfeed_ws_reconnects_total", reason="connection_lost")
            ranged = metric("kxfeed_ws_bad_frames_total", reason="range")
            bad_deltas = metric("kxfeed_ws_gaps_total", reason="bad_delta")
            await quiet_exchange(st)
            c = only_conn(st)
            book = sim_sub(c, "orderbook_delta")
            ticker = next(iter(book.markets))
            hostile: list[bytes] = []
            for msg in (
                {"price_dollars": "0.5000", "delta_fp": "1" + "0" * 29 + ".00", "side": "yes"},
                {"price_dollars": "0.5000", "delta_fp": "1.00", "side": "yes", "ts_ms": 2**70},
            ):
                book.seq += 1  # the frame takes the sid's next seq, as Kalshi's would
                hostile.append(
                    frame(
                        type="orderbook_delta",
                        sid=book.sid,
                        seq=book.seq,
                        msg={"market_ticker": ticker, **msg},
                    )
                )
            tick = sim_sub(c, "ticker")
            hostile.append(
                frame(
                    type="ticker",
                    sid=tick.sid,
                    msg={"market_ticker": ticker, "price_dollars": "0.5", "ts": 10**17},
                )
            )
            trades = sim_sub(c, "trade")
            hostile.append(
                frame(
                    type="trade",
                    sid=trades.sid,
                    msg={
                        "trade_id": "hostile-1",
                        "market_ticker": ticker,
                        "yes_price_dollars": "0.5",
                        "no_price_dollars": "0.5",
                        "count_fp": "1" + "0" * 23 + ".00",
                        "taker_outcome_side": "yes",
                        "ts": 1_790_000_000,
                    },
                )
            )
            c.push(hostile)
            await st.until(
                lambda: metric("kxfeed_ws_bad_frames_total", reason="range") - ranged >= 4,
                15.0,
                "range rejections",
            )
            st.sim.resume()
            await asyncio.sleep(0.5)
            await st.settle()
            assert metric("kxfeed_ws_bad_frames_total", reason="range") - ranged == 4
            # The first bad delta broke its market (the second found it already waiting for its
            # snapshot); recovered in band.
            assert metric("kxfeed_ws_gaps_total", reason="bad_delta") - bad_deltas == 1
            gaps = [g for g in st.tap.of(Gap) if g.reason == "bad_delta"]
            assert {g.status for g in gaps} == {"open", "recovered"} and all(
                g.tickers == [ticker] for g in gaps
            )
            assert not st.task.done()
            assert st.worker.session is not None and st.worker.session.conn == first_conn
            assert metric("kxfeed_ws_reconnects_total", reason="connection_lost") == reconnects
            st.assert_books_match_truth()

    run(body())


def test_seq_jumping_far_ahead_is_recovered_in_band_at_once(tmp_path: Path) -> None:
    async def body() -> None:
        async with stack(tmp_path, connector={"resync_timeout_s": 30.0}) as st:
            await asyncio.sleep(0.5)
            session = st.worker.session
            assert session is not None
            first_conn = session.conn
            dups = metric("kxfeed_ws_duplicates_total")
            reanchored = metric("kxfeed_ws_seq_reanchored_total")
            timeouts = metric("kxfeed_ws_resubscribes_total", reason="resync_timeout")
            c = only_conn(st)
            book = sim_sub(c, "orderbook_delta")
            ticker = next(iter(book.markets))
            c.push(
                [
                    frame(
                        type="orderbook_delta",
                        sid=book.sid,
                        seq=10**18,
                        msg={
                            "market_ticker": ticker,
                            "price_dollars": "0.5",
                            "delta_fp": "1.00",
                            "side": "yes",
                        },
                    )
                ]
            )
            # Recovered by get_snapshot: the resync timeout (30 s) is far longer than this wait,
            # so a recovery through it would fail here rather than pass slowly.
            await st.until(
                lambda: any(
                    g.status == "recovered" and g.received == 10**18 and g.method == "get_snapshot"
                    for g in st.tap.of(Gap)
                ),
                20.0,
                "the far-ahead gap recovered",
            )
            assert metric("kxfeed_ws_seq_reanchored_total") - reanchored == 1
            assert metric("kxfeed_ws_duplicates_total") == dups
            assert metric("kxfeed_ws_resubscribes_total", reason="resync_timeout") == timeouts
            await st.settle()
            assert st.worker.session is not None and st.worker.session.conn == first_conn
            st.assert_books_match_truth()

    run(body())
