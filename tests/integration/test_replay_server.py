"""The replay server over a real WebSocket, driven by a plain Kalshi client (tests.support's
BookClient: signs, subscribes, checks every sid's seq and rebuilds books from the frames)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from services.exchange_sim.replay import ReplayServer
from services.exchange_sim.replay_record import ReplayWindow, load
from shared.config import SimConfig
from shared.journal import JournalWriter
from shared.kalshi.auth import SIM_DEV_KEY_ID
from shared.messages import BATCH_ENCODER, BookDelta, BookSnapshot, Ticker, Trade
from tests.support.recording import START_NS, final_books, meta, write_recording
from tests.support.sim_client import BookClient, client_key

CHANNELS = ["orderbook_delta", "ticker", "trade"]


def server(journal: Path, speed: float | None, window: ReplayWindow | None = None, **kw: Any) -> ReplayServer:
    return ReplayServer(
        SimConfig(port=0),
        load(journal, window),
        speed=speed,
        keys={SIM_DEV_KEY_ID: client_key().public_key()},
        **kw,
    )


def frames_of(c: BookClient, kind: str) -> list[dict[str, Any]]:
    return [f for f in c.frames if f.get("type") == kind]


@pytest.mark.parametrize("speed", [None, 200.0])
def test_a_client_gets_the_books_then_every_recorded_message_with_contiguous_seqs(
    tmp_path: Path, speed: float | None
) -> None:
    # 1 ms apart: at 200x the 1,500 messages take ~8 ms of replay time per second recorded.
    books, msgs = write_recording(tmp_path, markets=4, messages=1_500)
    cut = msgs[500].ts_recv

    async def go() -> None:
        srv = server(tmp_path, speed, ReplayWindow(cut, START_NS + 10**12))
        await srv.start()
        try:
            c = await BookClient(srv.ws_url).connect()
            sids = await c.subscribe(CHANNELS, sorted(books))
            assert await c.pump_until(srv.finished.is_set, 30)
            await srv.sim.drained()
            want = [m for m in msgs if m.ts_recv >= cut]
            n = sum(1 for m in want if type(m) in (BookDelta, Trade, Ticker))
            assert await c.pump_until(
                lambda: sum(len(frames_of(c, k)) for k in ("orderbook_delta", "trade", "ticker")) >= n, 10
            )
            await c.close()
        finally:
            await srv.stop()
        assert c.seq_errors == [] and c.book_errors == []
        assert c.books == books
        snaps = frames_of(c, "orderbook_snapshot")
        assert len(snaps) == 4 and all(f["sid"] == sids["orderbook_delta"] for f in snaps)
        assert [f["seq"] for f in frames_of(c, "trade")] == list(range(1, len(frames_of(c, "trade")) + 1))
        recorded_trades = [m.trade_id for m in want if isinstance(m, Trade)]
        assert [f["msg"]["trade_id"] for f in frames_of(c, "trade")] == recorded_trades
        recorded_deltas = [(m.ticker, m.ts_exch) for m in want if isinstance(m, BookDelta)]
        got = [(f["msg"]["market_ticker"], f["msg"]["ts_ms"]) for f in frames_of(c, "orderbook_delta")]
        assert got == recorded_deltas  # in recorded order, with the recorded exchange times
        assert len(frames_of(c, "ticker")) == sum(1 for m in want if isinstance(m, Ticker))

    asyncio.run(go())


def test_nothing_is_sent_before_the_markets_are_subscribed_and_a_reset_goes_out_as_a_snapshot(
    tmp_path: Path,
) -> None:
    t = "KXREPLAY-26DEC03-T000"
    mid = "00000000-0000-0000-0000-000000000001"
    common: dict[str, Any] = {"ticker": t, "market_id": mid, "conn": 1, "sid": 1}
    ts = START_NS
    msgs = [
        meta(t, ts),
        BookSnapshot(**common, xseq=1, yes=[(4000, 100)], no=[(5000, 200)], ts_recv=ts + 1),
        BookDelta(**common, xseq=2, side="yes", price=3900, delta=100, ts_recv=ts + 2),
        # The recording lost deltas here: its next snapshot disagrees with the book so far.
        BookSnapshot(**common, xseq=1, yes=[(4100, 300)], no=[], ts_recv=ts + 3),
        BookDelta(**common, xseq=2, side="no", price=5200, delta=100, ts_recv=ts + 4),
    ]
    w = JournalWriter(tmp_path / "connector", fsync="never")
    w.append([BATCH_ENCODER.encode(msgs)])
    w.close()

    async def go() -> None:
        srv = server(tmp_path, None, start_after_s=3600)
        await srv.start()
        try:
            c = await BookClient(srv.ws_url).connect()
            await c.subscribe(["trade"], [t])  # no book subscription yet: the clock waits
            await c.pump(quiet=0.2, limit=1.0)
            assert not srv.started.is_set() and srv.source.sent == 0
            await c.subscribe(["orderbook_delta"], [t])
            assert await c.pump_until(lambda: len(frames_of(c, "orderbook_delta")) == 2, 10)
            await c.close()
        finally:
            await srv.stop()
        assert c.seq_errors == []
        snaps = frames_of(c, "orderbook_snapshot")
        assert [s["seq"] for s in snaps] == [1, 3]  # the reset takes the sid's next seq
        assert c.books[t] == ({4100: 300}, {5200: 100}) == final_books(msgs)[t]

    asyncio.run(go())


def test_a_client_subscribing_to_some_markets_starts_the_clock_after_start_after(tmp_path: Path) -> None:
    books, _ = write_recording(tmp_path, markets=3, messages=200)
    one = sorted(books)[0]

    async def go() -> None:
        srv = server(tmp_path, None, start_after_s=0.2)
        await srv.start()
        try:
            c = await BookClient(srv.ws_url).connect()
            await c.subscribe(["orderbook_delta"], [one])
            assert await c.pump_until(srv.finished.is_set, 20)
            await srv.sim.drained()
            await c.pump(quiet=0.2)
            await c.close()
        finally:
            await srv.stop()
        assert c.seq_errors == [] and c.books == {one: books[one]}

    asyncio.run(go())
