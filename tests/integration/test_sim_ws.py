"""The simulator over a real WebSocket, driven by a plain ``websockets`` client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import pytest
import websockets
from websockets.frames import Frame, Opcode

from shared.kalshi.auth import SIM_DEV_KEY_ID, auth_headers, generate_private_key
from shared.units import format_price, parse_price
from tests.support.sim_client import BookClient, client_key, running_sim, ws_headers


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _status_of_handshake(url: str, headers: dict[str, str] | None) -> int:
    try:
        async with websockets.connect(url, additional_headers=headers or {}):
            return 101
    except websockets.InvalidStatus as exc:
        return exc.response.status_code


def test_handshake_requires_a_valid_fresh_signature() -> None:
    async def go() -> None:
        async with running_sim() as sim:
            url = sim.ws_url
            assert await _status_of_handshake(url, ws_headers()) == 101
            assert await _status_of_handshake(url, None) == 401
            other = generate_private_key()
            assert await _status_of_handshake(url, ws_headers(other)) == 401  # wrong key
            assert await _status_of_handshake(url, ws_headers(key_id="someone-else")) == 401
            stale = int(time.time() * 1000) - 120_000
            assert await _status_of_handshake(url, ws_headers(now_ms=stale)) == 401
            # Signed over the wrong path (REST root instead of the WS path).
            bad_path = auth_headers(
                SIM_DEV_KEY_ID, client_key(), "GET", "/trade-api/v2", int(time.time() * 1000)
            )
            assert await _status_of_handshake(url, bad_path) == 401

    run(go())


def test_snapshot_then_contiguous_deltas_rebuild_the_truth() -> None:
    async def go() -> None:
        async with running_sim(markets=10, rate=400.0) as sim:
            tickers = sim.tickers[:8]
            c = await BookClient(sim.ws_url).connect()
            sids = await c.subscribe(["orderbook_delta"], tickers)
            await c.pump(quiet=0.05, limit=1.0)
            sim.pause()
            assert await sim.drained()
            await c.pump(quiet=0.3)
            book_frames = [f for f in c.frames if f.get("sid") == sids["orderbook_delta"]]
            snaps = [f for f in book_frames if f["type"] == "orderbook_snapshot"]
            # One snapshot per market first, seq 1..N, then deltas continuing the same counter.
            assert [f["seq"] for f in snaps] == list(range(1, len(tickers) + 1))
            assert book_frames[: len(tickers)] == snaps
            assert any(f["type"] == "orderbook_delta" for f in book_frames)
            assert c.seq_errors == []
            for t in tickers:
                assert c.books[t] == sim.truth.book(t), t
            await c.close()

    run(go())


def test_yes_price_mode_reports_no_side_on_the_yes_scale() -> None:
    async def go() -> None:
        async with running_sim(markets=6, rate=300.0) as sim:
            tickers = sim.tickers[:4]
            plain = await BookClient(sim.ws_url).connect()
            yes = await BookClient(sim.ws_url).connect()
            await plain.subscribe(["orderbook_delta"], tickers)
            await yes.subscribe(["orderbook_delta"], tickers, use_yes_price=True)
            await asyncio.sleep(0.5)
            sim.pause()
            assert await sim.drained()
            await plain.pump(quiet=0.2)
            await yes.pump(quiet=0.2)
            for t in tickers:
                assert plain.books[t] == yes.books[t] == sim.truth.book(t)
            # Same change, two encodings: a NO delta at q is reported at 1 - q in yes-price mode.
            d_plain = [f["msg"] for f in plain.of_type("orderbook_delta") if f["msg"]["side"] == "no"]
            d_yes = [f["msg"] for f in yes.of_type("orderbook_delta") if f["msg"]["side"] == "no"]
            # plain subscribed first, so it may hold a few extra deltas at the start.
            assert d_yes and len(d_plain) >= len(d_yes)
            for a, b in zip(d_plain[-len(d_yes) :], d_yes, strict=True):
                assert a["ts_ms"] == b["ts_ms"] and a["delta_fp"] == b["delta_fp"]
                assert parse_price(a["price_dollars"]) + parse_price(b["price_dollars"]) == 10_000
            await plain.close()
            await yes.close()

    run(go())


def test_ticker_trade_and_lifecycle_channels_agree_with_the_book() -> None:
    async def go() -> None:
        async with running_sim(markets=8, rate=500.0, lifecycle_every=40) as sim:
            c = await BookClient(sim.ws_url).connect()
            sids = await c.subscribe(
                ["orderbook_delta", "ticker", "trade", "market_lifecycle_v2"],
                sim.tickers,
                send_initial_snapshot=True,
            )
            await c.pump(quiet=0.05, limit=1.5)
            sim.pause()
            assert await sim.drained()
            await c.pump(quiet=0.3)
            tickers = c.of_type("ticker")
            trades = c.of_type("trade")
            life = [f for f in c.frames if f.get("sid") == sids["market_lifecycle_v2"]]
            assert tickers and trades and life
            assert {f["msg"]["event_type"] for f in life if f["type"] == "market_lifecycle_v2"} & {
                "close_date_updated",
                "deactivated",
                "created",
                "price_level_structure_updated",
            }
            # Lifecycle frames are numbered per sid like the book (newest docs); contiguous from 1.
            assert [f["seq"] for f in life] == list(range(1, len(life) + 1))
            # The last ticker of each market shows the book's top as the client rebuilt it.
            last: dict[str, dict[str, Any]] = {}
            for f in tickers:
                last[f["msg"]["market_ticker"]] = f["msg"]
            checked = 0
            for t, msg in last.items():
                if t not in c.books:
                    continue
                yes, no = c.books[t]
                best_yes = max(yes) if yes else 0
                assert msg["yes_bid_dollars"] == format_price(best_yes)
                best_no = max(no) if no else 0
                assert msg["yes_ask_dollars"] == format_price(10_000 - best_no)
                checked += 1
            assert checked >= 4
            # Every trade is echoed by a ticker whose last price is the trade's price.
            tr = trades[-1]["msg"]
            later = [f["msg"] for f in tickers if f["msg"]["market_ticker"] == tr["market_ticker"]]
            m = sim.truth.state.markets[tr["market_ticker"]]
            assert later[-1]["price_dollars"] == format_price(m.last_price) == tr["yes_price_dollars"]
            await c.close()

    run(go())


def test_server_pings_heartbeat_and_drops_clients_that_never_pong() -> None:
    async def go() -> None:
        async with running_sim(ping_interval_s=0.1, missed_pongs=3, rate=10.0) as sim:
            # A client that answers pings (websockets does by default) stays connected.
            good = await websockets.connect(sim.ws_url, additional_headers=ws_headers(), ping_interval=None)
            pings: list[bytes] = []
            bad = await websockets.connect(sim.ws_url, additional_headers=ws_headers(), ping_interval=None)
            send_frame = bad.protocol.send_frame

            def swallow_pongs(frame: Frame) -> None:  # a client that never answers pings
                if frame.opcode is Opcode.PONG:
                    pings.append(bytes(frame.data))
                    return
                send_frame(frame)

            bad.protocol.send_frame = swallow_pongs  # type: ignore[method-assign]
            t0 = time.monotonic()
            with pytest.raises(websockets.ConnectionClosed):
                while time.monotonic() - t0 < 3:
                    await asyncio.wait_for(bad.recv(), 3)
            assert time.monotonic() - t0 >= 0.3  # not before 3 unanswered pings
            assert pings and set(pings) == {b"heartbeat"}
            await good.send(json.dumps({"id": 1, "cmd": "list_subscriptions"}))
            reply = json.loads(await asyncio.wait_for(good.recv(), 2))
            assert reply == {"id": 1, "type": "ok", "msg": []}
            pong = await good.ping(b"x")
            await asyncio.wait_for(pong, 2)  # the server answers client pings
            await good.close()

    run(go())


def test_truth_knows_the_book_at_every_seq_a_client_saw() -> None:
    async def go() -> None:
        async with running_sim(markets=6, rate=400.0) as sim:
            t = sim.tickers[0]
            c = await BookClient(sim.ws_url).connect()
            sid = (await c.subscribe(["orderbook_delta"], [t]))["orderbook_delta"]
            await asyncio.sleep(0.6)
            sim.pause()
            assert await sim.drained()
            await c.pump(quiet=0.2)
            replay = BookClient(sim.ws_url)
            checked = 0
            for f in c.frames:
                replay._apply(f)
                if f.get("type") in ("orderbook_snapshot", "orderbook_delta"):
                    assert replay.books[t] == sim.truth.book_at_seq(1, sid, f["seq"], t), f["seq"]
                    checked += 1
            assert checked >= 3
            assert sim.truth.sent(1)[0].startswith(b'{"id":1,"type":"subscribed"')
            assert len(sim.truth.sent(1)) == len(c.frames)
            await c.close()

    run(go())


def test_truth_stamps_every_frame_with_the_wall_clock_time_it_was_sent() -> None:
    async def go() -> None:
        async with running_sim(markets=6, rate=400.0) as sim:
            before = time.time_ns()
            c = await BookClient(sim.ws_url).connect()
            await c.subscribe(["orderbook_delta", "ticker"], sim.tickers[:3])
            await asyncio.sleep(0.5)
            sim.pause()
            assert await sim.drained()
            after = time.time_ns()
            sent, writes = sim.truth.sent(1), sim.truth.sent_times(1)
            assert len(sent) > 10 and writes[0][0] == 0
            assert [i for i, _ in writes] == sorted({i for i, _ in writes}), "one entry a write, in order"
            assert [t for _, t in writes] == sorted(t for _, t in writes)
            stamps = [sim.truth.sent_at(1, i) for i in range(len(sent))]
            assert before <= stamps[0] and stamps == sorted(stamps) and stamps[-1] <= after
            with pytest.raises(KeyError):
                sim.truth.sent_at(1, len(sent))
            await c.close()

    run(go())


def test_blast_mode_generates_ahead_but_books_still_equal_the_truth() -> None:
    async def go() -> None:
        async with running_sim(markets=10, rate=0.0) as sim:
            tickers = sim.tickers[:6]
            c = await BookClient(sim.ws_url).connect()
            await c.subscribe(["orderbook_delta", "trade"], tickers)
            # Unpaced: thousands of frames come as fast as this client reads (counted, not timed:
            # a rate measured on a loaded machine says nothing about blast mode).
            for _ in range(2_500):
                await c.next()
            sim.pause()
            assert await sim.drained()
            await c.pump(quiet=0.3)
            assert c.seq_errors == [] and c.book_errors == []
            for t in tickers:
                assert c.books[t] == sim.truth.book(t)
            # The engine ran ahead of what was sent; the public state (REST, truth) did not.
            assert sim.engine.step_no >= sim.hub.steps - 2_000
            await c.close()

    run(go())


def test_pregenerated_blast_sends_nothing_until_resumed_then_all_of_it_in_order() -> None:
    async def go() -> None:
        async with running_sim(markets=10, rate=0.0) as sim:
            tickers = sim.tickers[:6]
            c = await BookClient(sim.ws_url).connect()
            await c.subscribe(["orderbook_delta", "trade"], tickers)
            await c.next()
            sim.pause()
            assert await sim.drained()
            await c.pump(quiet=0.3)
            books = {t: sim.truth.book(t) for t in tickers}
            # Blast may have paused with part of its last chunk unsent: that stays first in line.
            steps, sent, leftover = sim.hub.steps, sim.truth.sent(1)[:], sim.hub.pending

            pending = await sim.hub.prepare_blast(3_000)
            assert sim.hub.steps == steps + 3_000
            assert pending == sim.hub.pending and pending - leftover > 3_000  # ~1.7 emissions a step
            # Generated ahead, not sent: the truth and the client have not moved.
            assert await c.pump(quiet=0.3) == 0
            assert sim.truth.sent(1) == sent
            assert {t: sim.truth.book(t) for t in tickers} == books

            sim.resume()
            async with asyncio.timeout(30):  # the prepared run ends paused
                while not sim.paused:
                    with contextlib.suppress(TimeoutError):
                        await c.next(timeout=0.2)
            assert sim.hub.steps == steps + 3_000 and sim.hub.pending == 0
            assert await sim.drained()
            await c.pump(quiet=0.3)
            assert len(sim.truth.sent(1)) > len(sent)
            assert c.seq_errors == [] and c.book_errors == []
            for t in tickers:
                assert c.books[t] == sim.truth.book(t)
            await c.close()

    run(go())


def test_pregenerate_is_refused_while_running_or_paced() -> None:
    async def go() -> None:
        async with running_sim(markets=4, rate=0.0) as sim:
            with pytest.raises(ValueError, match="pause the simulator first"):
                await sim.hub.prepare_blast(10)
            sim.pause()
            with pytest.raises(ValueError, match="steps >= 1"):
                await sim.hub.prepare_blast(0)
        async with running_sim(markets=4, rate=50.0) as sim:
            sim.pause()
            with pytest.raises(ValueError, match="blast mode"):
                await sim.hub.prepare_blast(10)
            assert sim.hub.pending == 0

    run(go())


def test_paced_mode_keeps_the_rate_and_sends_a_tick_of_steps_at_a_time() -> None:
    # At 5,000 steps/s a step is due every 0.2 ms: the hub runs the ones due each tick
    # (>= 1 ms) together instead of arming a timer per step.
    async def go() -> None:
        async with running_sim(markets=8, rate=5_000.0) as sim:
            calls = 0
            real = sim.hub.step

            def counting(n: int = 1) -> None:
                nonlocal calls
                calls += 1
                real(n)

            sim.hub.step = counting  # type: ignore[method-assign]
            steps0, t0 = sim.hub.steps, time.monotonic()
            await asyncio.sleep(1.0)
            steps, elapsed = sim.hub.steps - steps0, time.monotonic() - t0
            # Never ahead of the rate; behind it only as far as this machine's load holds the loop
            # (no lower bound from a duration: late ticks run every step due, and steps > 0).
            assert 0 < steps <= 5_000 * elapsed + 20
            assert calls <= elapsed / 0.001 + 2  # not one per step (~5,000 here)
            assert steps / calls >= 3

    run(go())
