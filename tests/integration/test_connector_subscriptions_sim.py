"""The connector's subscriptions by Kalshi's current rules, against the real simulator over a
real WebSocket: error 26 splits a subscription until every market is placed, and both
``use_yes_price`` modes give the books the exchange holds."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from shared.messages import BookSnapshot

from .test_connector_support import metric, stack


def test_a_per_subscription_market_cap_is_met_by_splitting(tmp_path: Path) -> None:
    async def body() -> None:
        splits = metric("kxfeed_ws_splits_total", outcome="split")
        refused = metric("kxfeed_ws_command_errors_total", code="26")
        cap = 3
        async with stack(tmp_path, sim={"max_markets_per_sub": cap}) as st:
            s = st.worker.session
            assert s is not None
            markets = set(st.worker.markets.tickers())
            assert len(markets) > 2 * cap  # the first subscribe is refused, and so are its halves
            # Every market is subscribed on every market channel, no subscription above the cap.
            t = s.table
            assert t.markets() == markets
            for ch in ("orderbook_delta", "ticker", "trade"):
                subs = [sub for sub in t.live_subs() if sub.channel == ch]
                assert set().union(*(sub.markets for sub in subs)) == markets, ch
                assert max(len(sub.markets) for sub in subs) <= cap
            assert metric("kxfeed_ws_splits_total", outcome="split") - splits >= 2
            assert metric("kxfeed_ws_command_errors_total", code="26") - refused >= 2
            assert metric("kxfeed_ws_splits_total", outcome="gave_up") == 0
            # The exchange agrees: each of its book subscriptions holds at most the cap.
            (conn,) = st.sim.hub.conns.values()
            sim_books = [x for x in conn.session.subs.values() if x.channel == "orderbook_delta"]
            assert sum(len(x.markets) for x in sim_books) == len(markets)
            assert max(len(x.markets) for x in sim_books) <= cap
            await asyncio.sleep(0.5)
            await st.settle()
            assert st.assert_books_match_truth() == len(markets)

    asyncio.run(body())


@pytest.mark.parametrize("yes_price", [False, True])
def test_both_use_yes_price_modes_give_the_exchanges_books(tmp_path: Path, yes_price: bool) -> None:
    async def body() -> None:
        async with stack(tmp_path, connector={"use_yes_price": yes_price}) as st:
            (conn,) = st.sim.hub.conns.values()
            sim_book = next(x for x in conn.session.subs.values() if x.channel == "orderbook_delta")
            assert sim_book.yes_price is yes_price  # the simulator sends the mode asked for
            await asyncio.sleep(0.8)
            st.sim.faults.inject("gap")  # in-band recovery's snapshots too, not only the first ones
            await asyncio.sleep(0.5)
            await st.settle()
            assert st.assert_books_match_truth() >= 8
            assert any(b.no for b in st.tap.books.values())  # NO levels crossed the YES axis and back
            assert any(m.source == "ws" for m in st.tap.of(BookSnapshot))

    asyncio.run(body())
