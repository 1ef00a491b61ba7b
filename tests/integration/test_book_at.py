"""``kxfeed book TICKER --at TIME`` (shared/book/at.py): the book as stored at a moment.

Against the simulator: bus, sim, connector and writer as real processes; while the simulator
is paused its true books are the books at that moment, and the books rebuilt from the store
for that moment equal them, also after the simulator has moved on. On data stored through
the writer's own path (SQLite and PostgreSQL): every moment against an independent replay
of the messages, and the INVALID cases the live builder has, plus a hole in the sequence."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from shared.book.at import BookAt, book_at
from shared.config import Config, DbConfig
from shared.control import request
from shared.messages import BookDelta, BookSnapshot, MarketMeta, Message, PriceRange
from shared.store.engine import make_engine
from shared.store.types import us_to_datetime
from tests.support.config import make_config, write_config
from tests.support.control import stats
from tests.support.pg import DB_PARAMS, fresh_db
from tests.support.procs import kxfeed_cmd, spawn, stop_all, wait_until
from tests.support.stored import store_messages
from tests.support.synth import stamp

T = "KXAT-26DEC03-A"
MS = 1_800_000_000_000  # exchange ms of the first message


@pytest.fixture(params=DB_PARAMS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DbConfig]:
    yield from fresh_db(request, tmp_path, prefix="kxb")


def at(db: DbConfig, ticker: str, when: datetime) -> BookAt:
    async def go() -> BookAt:
        engine = make_engine(db)
        try:
            return await book_at(engine, ticker, when)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def snap(
    xseq: int, ms: int, yes: list[tuple[int, int]], no: list[tuple[int, int]], sid: int = 1
) -> BookSnapshot:
    return BookSnapshot(ticker=T, market_id="m", conn=1, sid=sid, xseq=xseq, yes=yes, no=no, ts_exch=ms,
                        ts_recv=ms * 1_000_000)  # fmt: skip


def delta(xseq: int, ms: int, side: str, price: int, d: int, ticker: str = T, sid: int = 1) -> BookDelta:
    return BookDelta(ticker=ticker, market_id="m", conn=1, sid=sid, xseq=xseq, side=side, price=price,
                     delta=d, ts_exch=ms, ts_recv=ms * 1_000_000)  # fmt: skip


def model(msgs: list[Message], upto_ms: int) -> dict[str, dict[int, int]]:
    """The book by plain dict arithmetic: the newest snapshot at or before the moment, then its
    deltas (independent of the builder)."""
    book: dict[str, dict[int, int]] = {"yes": {}, "no": {}}
    for m in msgs:
        if m.ts_exch is None or m.ts_exch > upto_ms or getattr(m, "ticker", None) != T:
            continue
        if isinstance(m, BookSnapshot):
            book = {"yes": dict(m.yes), "no": dict(m.no)}
        elif isinstance(m, BookDelta):
            side = book[m.side]
            side[m.price] = side.get(m.price, 0) + m.delta
            if not side[m.price]:
                del side[m.price]
    return book


def levels(b: BookAt) -> dict[str, dict[int, int]]:
    return {"yes": dict(b.yes), "no": dict(b.no)}


def test_every_moment_equals_an_independent_replay(db: DbConfig) -> None:
    msgs: list[Message] = [
        MarketMeta(ticker=T, event_ticker="E", series_ticker="S", title="", yes_sub_title="", no_sub_title="",
                   status="active", price_ranges=[PriceRange(0, 10_000, 100)]),
        snap(1, MS, [(4000, 1000), (3900, 500)], [(5500, 700)]),
    ]  # fmt: skip
    x, ms = 1, MS
    for i in range(300):
        x, ms = x + 1, ms + 10
        if i % 7 == 3:  # another market of the subscription takes a seq: not a hole
            msgs.append(delta(x, ms, "yes", 100, 100, ticker="KXAT-26DEC03-B"))
            continue
        side = "yes" if i % 2 else "no"
        price = (3000 + 100 * (i % 9)) if side == "yes" else (5000 + 100 * (i % 9))
        cur = model(msgs, ms)[side].get(price, 0)
        msgs.append(delta(x, ms, side, price, -cur if cur and i % 5 == 0 else 100 + i))
        if i == 151:  # a fresh snapshot on the subscription replaces the book
            x, ms = x + 1, ms + 10
            msgs.append(snap(x, ms, [(4100, 200)], [(5600, 300)]))
    asyncio.run(store_messages(db, stamp(msgs)))
    assert not at(db, T, us_to_datetime((MS - 1) * 1000)).found  # before the first snapshot
    for upto in [MS, MS + 5, *range(MS + 10, ms + 20, 130), ms]:
        b = at(db, T, us_to_datetime(upto * 1000))
        assert b.found and b.valid and b.reason == "", (upto, b.reason)
        assert levels(b) == model(msgs, upto), upto
        assert b.tick_checked and b.ts_us <= upto * 1000
    last = at(db, T, us_to_datetime(ms * 1000))
    assert last.snapshot_xseq > 1 and last.xseq == x  # from the later snapshot, every delta applied
    ans = last.answer(depth=1)
    assert len(ans["yes"]) == 1 and ans["levels"]["yes"] == len(last.yes) and ans["valid"]
    assert ans["top"]["yes_bid"] == last.yes[0][0] and ans["top"]["yes_ask"] == 10_000 - last.no[0][0]


def test_what_breaks_a_live_book_breaks_this_one_and_a_hole_is_a_gap(db: DbConfig) -> None:
    base = [(4000, 1000)], [(5500, 700)]
    msgs: list[Message] = [
        snap(1, MS, *base), delta(2, MS + 1, "yes", 4000, -1500),  # negative level
        snap(3, MS + 10, *base), delta(4, MS + 11, "yes", 4600, 100),  # crosses $1 - $0.55
        snap(5, MS + 20, *base), delta(6, MS + 21, "yes", 4100, 100), delta(9, MS + 22, "yes", 4100, 100),
        snap(10, MS + 30, *base), delta(11, MS + 31, "no", 5500, -700),  # fine: a side may empty
    ]  # fmt: skip
    asyncio.run(store_messages(db, stamp(msgs)))
    want = {MS + 1: "negative_level", MS + 11: "crossed", MS + 21: "", MS + 22: "gap", MS + 31: ""}
    for upto, reason in want.items():
        b = at(db, T, us_to_datetime(upto * 1000))
        assert (b.valid, b.reason) == (reason == "", reason), upto
    b = at(db, T, us_to_datetime((MS + 31) * 1000))
    assert b.no == [] and b.answer()["top"]["yes_ask"] is None


def test_two_collector_lines_the_book_follows_the_valid_line_with_the_newest_change(db: DbConfig) -> None:
    """Line 1 (conn 1) has the newest snapshot, then goes quiet (its collector died) and later
    stores a delta past a hole; line 2 (conn 2) carries on. Each moment takes the VALID line with
    the newest change, the newest snapshot's line while nothing newer was stored elsewhere."""
    base = [(4000, 1000)], [(5500, 700)]

    def on(conn: int, m: Message) -> Message:
        return msgspec.structs.replace(m, conn=conn)

    msgs: list[Message] = [
        on(2, snap(1, MS, *base)),
        on(1, snap(1, MS + 1, *base)),
        on(1, delta(2, MS + 2, "yes", 4000, 100)), on(2, delta(2, MS + 2, "yes", 4000, 100)),
        on(2, delta(3, MS + 5, "yes", 4100, 200)), on(2, delta(4, MS + 6, "yes", 4100, -50)),
        on(1, delta(5, MS + 7, "yes", 4000, 1)),  # seqs 3 and 4 of line 1 never stored
    ]  # fmt: skip
    asyncio.run(store_messages(db, stamp(msgs)))
    want = {
        MS + 2: (1, {4000: 1100}),  # line 2 has nothing newer: the newest snapshot's line
        MS + 6: (2, {4000: 1100, 4100: 150}),  # line 1 went quiet, line 2 moved on
        MS + 7: (2, {4000: 1100, 4100: 150}),  # line 1 has a hole
    }
    for upto, (conn, yes) in want.items():
        b = at(db, T, us_to_datetime(upto * 1000))
        assert (b.valid, b.conn, dict(b.yes)) == (True, conn, yes), (upto, b.conn, b.reason)


# ---- against the simulator -------------------------------------------------------------------


class Stack:
    def __init__(self, tmp: Path) -> None:
        # No lifecycle: a market closing would leave the truth a book nobody keeps.
        self.cfg: Config = make_config(tmp, sim={"markets": 6, "rate": 60.0, "lifecycle_every": 0})
        self.path = write_config(self.cfg, tmp / "kxfeed.toml")
        self.procs: list[subprocess.Popen[bytes]] = []
        for name in ("bus", "sim", "writer"):
            self.procs.append(spawn("worker", name, "--config", str(self.path)))
        assert wait_until(lambda: stats(self.cfg.sim.control).get("ready"), 60), "sim not ready"
        # The writer has migrated its database once it is ready: the store can be read from then.
        assert wait_until(lambda: stats(self.cfg.writer.control).get("ready"), 60), "writer not ready"
        self.procs.append(spawn("worker", "connector", "--config", str(self.path)))

    def truth(self) -> dict[str, dict[str, dict[int, int]]]:
        books = request(self.cfg.sim.control, "books")
        return {t: {s: {p: n for p, n in b[s]} for s in ("yes", "no")} for t, b in books.items()}

    def stored(self, when: datetime) -> dict[str, BookAt]:
        async def go() -> dict[str, BookAt]:
            engine = make_engine(self.cfg.db)
            try:
                return {t: await book_at(engine, t, when) for t in self.tickers}
            finally:
                await engine.dispose()

        return asyncio.run(go())

    def pause_and_match(self) -> tuple[datetime, dict[str, dict[str, dict[int, int]]]]:
        """Pause the simulator; once the store has caught up with what it sent, the moment and
        the truth then (the store catching up is waited for, never timed)."""
        request(self.cfg.sim.control, "pause")
        truth = self.truth()
        self.tickers = sorted(truth)
        now: list[datetime] = []

        def caught_up() -> bool:
            now[:] = [datetime.now(UTC)]
            got = self.stored(now[0])
            return all(b.valid and levels(b) == truth[t] for t, b in got.items())

        assert wait_until(caught_up, 60, interval=0.5), "stored books never matched the truth"
        time.sleep(0.05)  # the moment is strictly before anything sent after the resume
        request(self.cfg.sim.control, "resume")
        return now[0], truth


@pytest.mark.slow(waits=True)
def test_books_at_moments_equal_the_simulators_truth_then(tmp_path: Path) -> None:
    stack = Stack(tmp_path)
    try:
        # Traffic first: every market has deltas stored after its snapshot (waited for, not timed).
        def traffic() -> bool:
            stack.tickers = sorted(stack.truth())
            return all(b.valid and b.deltas > 0 for b in stack.stored(datetime.now(UTC)).values())

        assert wait_until(traffic, 60, interval=0.5), "no market had deltas stored after its snapshot"
        first, truth1 = stack.pause_and_match()
        assert wait_until(lambda: stack.stored(datetime.now(UTC)) != stack.stored(first), 60, interval=0.5)
        _, truth2 = stack.pause_and_match()
        assert truth2 != truth1  # the market moved between the two moments
        # The first moment again, long after: the same books as the truth was then.
        then = stack.stored(first)
        assert {t: levels(b) for t, b in then.items()} == truth1
        assert all(b.valid and b.deltas > 0 for b in then.values())
        # The command: the same book, exact integers, for one market.
        t = stack.tickers[0]
        out = subprocess.run(
            kxfeed_cmd("book", t, "--at", first.isoformat(), "--json", "--config", str(stack.path)),
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        ans = json.loads(out.stdout)
        assert ans["valid"] and {s: dict(map(tuple, ans[s])) for s in ("yes", "no")} == truth1[t]
        assert ans["xseq"] == then[t].xseq and ans["hash"] == f"{then[t].hash & 0xFFFFFFFFFFFFFFFF:016x}"
        table = subprocess.run(
            kxfeed_cmd("book", t, "--at", first.isoformat(), "--config", str(stack.path)),
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert table.returncode == 0 and "VALID" in table.stdout and "as stored at" in table.stdout
        early = subprocess.run(
            kxfeed_cmd("book", t, "--at", "2001-01-01T00:00:00Z", "--config", str(stack.path)),
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert early.returncode == 1 and "no WebSocket snapshot" in early.stdout
        assert msgspec.json.decode(out.stdout)["found"] is True
    finally:
        stop_all(reversed(stack.procs))
