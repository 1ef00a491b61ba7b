"""Reading a recording back for replay: windows, the state at their start, refusals; and the
frames replay sends for recorded messages, read back by kxfeed's own parser."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import msgspec
import pytest

from services.exchange_sim import frames
from services.exchange_sim.catalog import CatalogFactory
from services.exchange_sim.emission import K_DELTA
from services.exchange_sim.replay_catalog import structure_of
from services.exchange_sim.replay_frames import BodyCache
from services.exchange_sim.replay_record import ReplayError, ReplayWindow, load, parse_time
from services.exchange_sim.replay_source import K_RESNAPSHOT, ReplaySource
from services.exchange_sim.state import ExchangeState
from shared.journal import JournalWriter
from shared.kalshi import parse, ws
from shared.messages import BATCH_ENCODER, BookDelta, BookSnapshot, PriceRange, Ticker, Trade
from tests.support.recording import START_NS, final_books, meta, write_recording

LOG = logging.getLogger("test.replay")


def _source(rec: object, speed: float | None = None) -> ReplaySource:
    src = ReplaySource(rec, speed, LOG)  # type: ignore[arg-type]
    state = ExchangeState(src.initial_events)
    for em in src.initial_emissions(0):
        state.apply(em)
    src.attach(state)
    return src


def test_times_parse_iso_and_unix_ms_and_bad_ones_are_refused() -> None:
    assert parse_time("2026-12-03T14:00:00Z", "--since") == 1_796_306_400 * 10**9
    assert parse_time("2026-12-03T14:00:00", "--since") == 1_796_306_400 * 10**9  # no offset: UTC
    assert parse_time("2026-12-03T15:00:00+01:00", "--since") == 1_796_306_400 * 10**9
    assert parse_time("1796306400000", "--since") == 1_796_306_400 * 10**9
    for bad in ("yesterday", "2026-13-01T00:00:00Z", "", "-5"):
        with pytest.raises(ReplayError, match="--until"):
            parse_time(bad, "--until")
    with pytest.raises(ReplayError, match=r"outside 2000\.\.2100"):
        parse_time("1", "--since")


def test_a_window_starts_from_the_books_and_stats_as_they_stood_and_counts_what_it_holds(
    tmp_path: Path,
) -> None:
    books, msgs = write_recording(tmp_path, markets=3, messages=600)
    cut = msgs[300].ts_recv
    rec = load(tmp_path, ReplayWindow(cut, START_NS + 10**12))
    assert sorted(rec.markets) == sorted(books)
    assert rec.books == final_books([m for m in msgs if m.ts_recv < cut])
    assert not rec.seeded  # every book was known before the window
    inside = [m for m in msgs if m.ts_recv >= cut and type(m) in (BookDelta, Trade, Ticker, BookSnapshot)]
    assert sum(rec.counts.values()) == len(inside)
    before_tickers = [m for m in msgs if isinstance(m, Ticker) and m.ts_recv < cut]
    assert rec.stats[before_tickers[-1].ticker] == before_tickers[-1]
    # Streaming the window, the source ends on exactly the recorded books.
    src = _source(rec)
    src.start()
    ems = src.run(10**6, 0)
    assert src.finished and src.sent == len(inside)
    for em in ems:
        src.state.apply(em)  # type: ignore[union-attr]
    for t, (yes, no) in books.items():
        m = src.state.markets[t]  # type: ignore[union-attr]
        assert (m.yes, m.no) == (yes, no)


def test_a_window_from_the_start_takes_each_first_snapshot_as_its_book(tmp_path: Path) -> None:
    books, msgs = write_recording(tmp_path, markets=2, messages=50)
    rec = load(tmp_path)
    assert rec.seeded == set(books)
    first = {m.ticker: (dict(m.yes), dict(m.no)) for m in msgs if isinstance(m, BookSnapshot)}
    assert rec.books == first
    src = _source(rec)
    src.start()
    # The seeding snapshots agree with the starting books: nothing is sent for them.
    assert all(em.kind != K_RESNAPSHOT for em in src.run(10**6, 0))


def test_bad_input_is_refused_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ReplayError, match="no journal under"):
        load(tmp_path / "nothing")
    books, _ = write_recording(tmp_path, markets=2, messages=100)
    with pytest.raises(ReplayError, match="must be before --until"):
        load(tmp_path, ReplayWindow(START_NS + 10, START_NS))
    with pytest.raises(ReplayError, match=r"no data between .* the journals hold"):
        load(tmp_path, ReplayWindow(START_NS + 10**12, START_NS + 2 * 10**12))
    with pytest.raises(ReplayError, match=r"not in the recording: KXNOPE.*recorded markets: KXREPLAY"):
        load(tmp_path, tickers=["KXNOPE"])
    one = sorted(books)[0]
    rec = load(tmp_path, tickers=[one])
    assert rec.markets == [one] and set(rec.per_market) == {one}


def test_a_snapshot_that_disagrees_resets_the_book_and_a_delta_below_zero_is_skipped(tmp_path: Path) -> None:
    t = "KXREPLAY-26DEC03-T000"
    ts = START_NS
    common: dict[str, Any] = {
        "ticker": t,
        "market_id": "00000000-0000-0000-0000-000000000001",
        "conn": 1,
        "sid": 1,
    }
    msgs = [
        meta(t, ts),
        BookSnapshot(**common, xseq=1, yes=[(4000, 100)], no=[(5000, 200)], ts_recv=ts + 1),
        BookDelta(**common, xseq=2, side="yes", price=4000, delta=-300, ts_recv=ts + 2),  # below zero
        BookSnapshot(**common, xseq=1, yes=[(4100, 100)], no=[(5000, 200)], ts_recv=ts + 3),  # a loss
        BookDelta(**common, xseq=2, side="no", price=5000, delta=-200, ts_recv=ts + 4),
    ]
    w = JournalWriter(tmp_path / "connector", fsync="never")
    w.append([BATCH_ENCODER.encode(msgs)])
    w.close()
    src = _source(load(tmp_path))
    src.start()
    ems = src.run(100, 0)
    kinds = [(em.kind, em.body is not None) for em in ems]
    # the reset as state-only deltas (-4000, +4100), the snapshot sent, then the last delta
    assert kinds == [(K_DELTA, False), (K_DELTA, False), (K_RESNAPSHOT, True), (K_DELTA, True)]
    assert msgspec.json.decode(ems[2].body) == {  # type: ignore[arg-type]
        "market_ticker": t,
        "market_id": common["market_id"],
        "yes_dollars_fp": [["0.4100", "1.00"]],
        "no_dollars_fp": [["0.5000", "2.00"]],
    }
    for em in ems:
        src.state.apply(em)  # type: ignore[union-attr]
    m = src.state.markets[t]  # type: ignore[union-attr]
    assert (m.yes, m.no) == ({4100: 100}, {})


def test_recorded_messages_read_back_by_kxfeeds_parser_are_the_recorded_ones(tmp_path: Path) -> None:
    _, msgs = write_recording(tmp_path, markets=3, messages=400)
    src = _source(load(tmp_path))
    src.start()
    ems = [em for em in src.run(10**6, 0) if em.body is not None]
    recorded = [m for m in msgs if type(m) in (BookDelta, Trade, Ticker)]
    assert len(ems) == len(recorded)
    for em, m in zip(ems, recorded, strict=True):
        seq = b',"seq":7' if em.seq else b""
        raw = b'%s1%s,"msg":%s}' % (em.type_prefix, seq, em.body)
        frame = ws.FRAME_DECODER.decode(raw)
        if isinstance(m, BookDelta):
            assert isinstance(frame, ws.OrderbookDelta)
            got = parse.delta(frame, conn=1, ts_recv=m.ts_recv)
            keep = {"conn": 1, "sid": 1, "xseq": 7}
            assert got == msgspec.structs.replace(m, **keep)
            if em.body_yp is not None:  # the use_yes_price twin reads back to the same delta
                twin = ws.FRAME_DECODER.decode(b'%s1%s,"msg":%s}' % (em.type_prefix, seq, em.body_yp))
                assert parse.delta(twin, conn=1, ts_recv=m.ts_recv, yes_price=True) == got  # type: ignore[arg-type]
        elif isinstance(m, Trade):
            assert isinstance(frame, ws.TradeFrame)
            assert parse.trade(frame, ts_recv=m.ts_recv) == m
        else:
            assert isinstance(frame, ws.TickerFrame)
            assert parse.ticker(frame, ts_recv=m.ts_recv) == m


def test_cached_bodies_are_the_simulators_bytes() -> None:
    ev = CatalogFactory(3, START_NS // 1_000_000).initial(2)[0]
    state = ExchangeState([ev])
    m = state.markets[ev.markets[0].ticker]
    cache = BodyCache()
    for side in (0, 1):
        for price, delta in ((100, 1), (9900, -250), (4500, 123_456)):
            assert cache.delta(m, side == 0, price, delta, 1_796_306_400_123) == frames.delta_bodies(
                m, side, price, delta, 1_796_306_400_123
            )


def test_a_ladder_the_simulator_does_not_serve_is_refused() -> None:
    assert structure_of(meta("KXA-1", 0)) == "linear_cent"
    odd = msgspec.structs.replace(meta("KXA-1", 0), price_ranges=[PriceRange(0, 10_000, 7)])
    with pytest.raises(ReplayError, match="KXA-1: recorded price ladder"):
        structure_of(odd)


def test_garbled_records_are_counted_and_markets_only_described_are_not_replayed(tmp_path: Path) -> None:
    books, _ = write_recording(tmp_path, markets=2, messages=50)
    w = JournalWriter(tmp_path / "poller", fsync="never")
    w.append([b"\xc1 not msgpack", BATCH_ENCODER.encode([meta("KXREPLAY-26DEC03-T999", START_NS + 5)])])
    w.close()
    rec = load(tmp_path)
    assert rec.skipped == {"undecodable_record": 1}
    assert sorted(rec.markets) == sorted(books)  # T999 has metadata only: nothing to replay
    assert load(tmp_path, tickers=["KXREPLAY-26DEC03-T999", sorted(books)[0]]).markets == [
        sorted(books)[0],
        "KXREPLAY-26DEC03-T999",
    ]
