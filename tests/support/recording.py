"""A synthetic recording: what a connector would have journaled, written fast (replay's tests
and bench). Books stay consistent (no level goes below zero), times advance evenly, and the
final books are returned so a replay can be checked against them."""

from __future__ import annotations

import random
import uuid
from pathlib import Path
from typing import Any

from shared.journal import JournalWriter
from shared.messages import (
    BATCH_ENCODER,
    BookDelta,
    BookSnapshot,
    MarketMeta,
    Message,
    PriceRange,
    Side,
    Ticker,
    Trade,
)

CENT = [PriceRange(0, 10_000, 100)]
START_NS = 1_796_300_000 * 10**9  # 2026-12-03 (a fixed, plausible day)
Books = dict[str, tuple[dict[int, int], dict[int, int]]]


def tickers(n: int) -> list[str]:
    return [f"KXREPLAY-26DEC03-T{i:03d}" for i in range(n)]


def meta(ticker: str, ts_recv: int) -> MarketMeta:
    return MarketMeta(
        ticker=ticker,
        event_ticker="KXREPLAY-26DEC03",
        series_ticker="KXREPLAY",
        title=f"Replay market {ticker}",
        yes_sub_title="yes",
        no_sub_title="no",
        status="active",
        category="Economics",
        open_ms=START_NS // 1_000_000 - 3_600_000,
        close_ms=START_NS // 1_000_000 + 86_400_000,
        price_ranges=CENT,
        fee_type="quadratic",
        ts_recv=ts_recv,
    )


def write_recording(
    journal_dir: Path,
    *,
    markets: int = 4,
    messages: int = 2_000,
    step_ns: int = 1_000_000,
    batch: int = 64,
    seed: int = 1,
    start_ns: int = START_NS,
) -> tuple[Books, list[Message]]:
    """Write ``<journal_dir>/connector/`` and return the final books and every message written.

    Each market gets its MarketMeta and a snapshot first; then ``messages`` of deltas (80%),
    trades and tickers, ``step_ns`` apart."""
    rng = random.Random(seed)
    names = tickers(markets)
    ids = {t: str(uuid.uuid5(uuid.NAMESPACE_URL, t)) for t in names}
    books: Books = {}
    ts = start_ns
    out: list[Message] = []
    for i, t in enumerate(names):
        out.append(meta(t, ts))
        yes = {p: rng.randrange(1, 50) * 100 for p in range(3000, 4000, 100)}
        no = {p: rng.randrange(1, 50) * 100 for p in range(5000, 5900, 100)}
        books[t] = (dict(yes), dict(no))
        out.append(
            BookSnapshot(
                ticker=t,
                market_id=ids[t],
                conn=1,
                sid=1,
                xseq=i + 1,
                yes=sorted(yes.items()),
                no=sorted(no.items()),
                ts_exch=ts // 1_000_000,
                ts_recv=ts,
            )
        )
    xseq = markets
    volume = dict.fromkeys(names, 0)
    for n in range(messages):
        ts += step_ns
        t = names[rng.randrange(markets)]
        ts_ms = ts // 1_000_000
        r = rng.random()
        if r < 0.8:
            xseq += 1
            side: Side = "yes" if rng.random() < 0.5 else "no"
            book = books[t][0 if side == "yes" else 1]
            price = rng.randrange(2000, 4100, 100) if side == "yes" else rng.randrange(4100, 5900, 100)
            have = book.get(price, 0)
            delta = -rng.randrange(1, have + 1) if have and rng.random() < 0.5 else rng.randrange(1, 30) * 100
            size = have + delta
            if size:
                book[price] = size
            else:
                del book[price]
            out.append(
                BookDelta(
                    ticker=t,
                    market_id=ids[t],
                    conn=1,
                    sid=1,
                    xseq=xseq,
                    side=side,
                    price=price,
                    delta=delta,
                    ts_exch=ts_ms,
                    ts_recv=ts,
                )
            )
        elif r < 0.9:
            count = rng.randrange(1, 20) * 100
            volume[t] += count
            yes_price = rng.randrange(3000, 4000, 100)
            out.append(
                Trade(
                    trade_id=f"{seed}-{n}",
                    ticker=t,
                    yes_price=yes_price,
                    no_price=10_000 - yes_price,
                    count=count,
                    taker_side="yes" if rng.random() < 0.5 else "no",
                    ts_exch=ts_ms,
                    ts_recv=ts,
                )
            )
        else:
            out.append(
                Ticker(
                    ticker=t,
                    market_id=ids[t],
                    price=3500,
                    yes_bid=3900,
                    yes_ask=5100,
                    yes_bid_size=100,
                    yes_ask_size=200,
                    last_trade_size=100,
                    volume=volume[t],
                    open_interest=volume[t] // 2,
                    dollar_volume=volume[t] * 35 // 10**6,
                    dollar_open_interest=0,
                    ts_exch=ts_ms,
                    ts_recv=ts,
                )
            )
    w = JournalWriter(journal_dir / "connector", fsync="never")
    try:
        for i in range(0, len(out), batch):
            w.append([BATCH_ENCODER.encode(out[i : i + batch])])
    finally:
        w.close()
    return books, out


def final_books(msgs: list[Any]) -> Books:
    """The books a list of messages leaves (snapshots reset, deltas apply)."""
    books: Books = {}
    for m in msgs:
        if isinstance(m, BookSnapshot):
            books[m.ticker] = (dict(m.yes), dict(m.no))
        elif isinstance(m, BookDelta):
            side = books[m.ticker][0 if m.side == "yes" else 1]
            size = side.get(m.price, 0) + m.delta
            if size:
                side[m.price] = size
            else:
                side.pop(m.price, None)
    return books
