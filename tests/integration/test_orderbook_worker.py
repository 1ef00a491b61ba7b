"""The orderbook worker as a real process on a real bus: start-up snapshot request, books
from published snapshots/deltas, tob/bookstate/depth on the bus, snapshot requests for
INVALID books, the gap sample stream, and answers over the control socket and the CLI."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from shared.bus import Publisher, Subscriber
from shared.config import Config
from shared.control import ControlError, request
from shared.messages import (
    BookDelta,
    BookSnapshot,
    BookState,
    Control,
    Depth,
    MarketMeta,
    Message,
    TopOfBook,
)
from tests.support.config import make_config, write_config
from tests.support.messages import book_meta
from tests.support.procs import ROOT, kxfeed_cmd, spawn, wait_until
from tests.unit.test_orderbook_gap import A, B, gap_sample_stream


def _up(endpoint: str) -> bool:
    try:
        return bool(request(endpoint, "ping", timeout_s=0.5))
    except ControlError:
        return False


class Rig:
    """A bus, one orderbook worker, and a test-side 'connector' (publisher + subscriber)."""

    def __init__(self, tmp: Path) -> None:
        self.cfg: Config = make_config(
            tmp,
            orderbook={
                "depth_interval": 0.2,
                "movers_sample_s": 0.1,
                "ready_quiet_s": 0.2,
                "resync_timeout_s": 0.5,
            },
        )
        self.path = write_config(self.cfg, tmp / "kxfeed.toml")
        self.procs: list[subprocess.Popen[bytes]] = []
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.procs.append(spawn("bus", "--config", str(self.path)))
        assert wait_until(lambda: _up(self.cfg.busproxy.control), timeout=15), "bus did not come up"
        # Listen before the worker starts: its start-up request must be seen.
        self.sub = Subscriber(
            self.ctx, self.cfg.bus.xpub, ["ctl.connector", "ctl.gapfill", "bookstate.", "tob.", "depth."]
        )
        self.pub = Publisher(self.ctx, self.cfg.bus.xsub, "connector")
        self.seen: list[Message] = []
        self.procs.append(spawn("worker", "orderbook", "--config", str(self.path)))
        assert wait_until(lambda: _up(self.cfg.orderbook.control), timeout=15), "orderbook did not come up"
        assert self.pub.wait_for_subscriber_sync("delta.X", 10), "the worker never subscribed"

    def ask(self, cmd: str, **args: Any) -> Any:
        return request(self.cfg.orderbook.control, cmd, args, timeout_s=5)

    def collect(self, until: Any, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.seen += self.sub.recv_blocking(0.05)
            if until():
                return True
        return bool(until())

    def of(self, kind: type, ticker: str | None = None) -> list[Any]:
        """What the worker published (our own input BookStates travel on the same topics)."""
        return [
            m
            for m in self.seen
            if isinstance(m, kind)
            and m.pub.startswith("orderbook")
            and (ticker is None or getattr(m, "ticker", None) == ticker)
        ]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            kxfeed_cmd(*args, "--config", str(self.path)),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )

    def close(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                p.wait(10)
        self.sub.close()
        self.pub.close(0)
        self.ctx.destroy(0)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    yield r
    r.close()


def meta(t: str) -> MarketMeta:
    return book_meta(t, title=t)


def test_worker_builds_books_publishes_tops_and_answers_queries(rig: Rig) -> None:
    # The worker asks the connector for snapshots of every market when it starts.
    assert rig.collect(lambda: any(c.cmd == "snapshot" and c.tickers == [] for c in rig.of(Control)))
    assert wait_until(lambda: rig.ask("stats")["ready"] is True, 5)  # nothing known yet, nothing invalid
    tickers = ["KXTEST-A", "KXTEST-B", "KXTEST-C"]
    rig.pub.publish_many([meta(t) for t in tickers])
    rig.pub.publish_many(
        [
            BookSnapshot(
                ticker=t,
                market_id=t,
                conn=1,
                sid=1,
                xseq=i + 1,
                yes=[(4000, 1000), (3900, 500)],
                no=[(5000 + 100 * i, 700)],
                ts_recv=111 + i,
            )
            for i, t in enumerate(tickers)
        ]
    )
    rig.pub.publish(
        BookDelta(
            ticker="KXTEST-A",
            market_id="a",
            conn=1,
            sid=1,
            xseq=4,
            side="yes",
            price=4200,
            delta=250,
            ts_recv=123_456,
            ts_exch=1_700_000_000_001,
        )
    )
    assert rig.collect(lambda: any(m.xseq == 4 for m in rig.of(TopOfBook, "KXTEST-A")))
    tob = [m for m in rig.of(TopOfBook, "KXTEST-A") if m.xseq == 4][-1]
    assert tob.valid and (tob.yes_bid, tob.yes_bid_size, tob.yes_ask, tob.yes_ask_size) == (
        4200,
        250,
        5000,
        700,
    )
    assert (tob.ts_recv, tob.ts_exch, tob.mid_x2, tob.spread) == (123_456, 1_700_000_000_001, 9200, 800)
    assert {m.ticker for m in rig.of(BookState) if m.valid} == set(tickers)
    assert rig.collect(lambda: {d.ticker for d in rig.of(Depth)} >= set(tickers))

    ans = rig.ask("book", ticker="KXTEST-A", depth=2)
    assert (
        ans["valid"]
        and ans["xseq"] == 4
        and ans["yes"] == [[4200, 250], [4000, 1000]]
        and ans["no"] == [[5000, 700]]
    )
    spreads = rig.ask("spreads", top=3, order="narrowest")
    assert [(r["ticker"], r["spread"]) for r in spreads] == [
        ("KXTEST-A", 800),
        ("KXTEST-C", 800),
        ("KXTEST-B", 900),
    ]

    # A mid move shows up in movers once a sample has been taken on each side of it.
    time.sleep(0.3)
    rig.pub.publish(
        BookDelta(ticker="KXTEST-C", market_id="c", conn=1, sid=1, xseq=5, side="yes", price=4500, delta=100)
    )
    assert wait_until(
        lambda: [r["ticker"] for r in rig.ask("movers", top=5, window_s=0.25)] == ["KXTEST-C"], 5
    )
    moved = rig.ask("movers", top=5, window_s=0.25)[0]
    assert moved["change_x2"] == 500

    out = rig.cli("book", "KXTEST-A", "--depth", "2")
    assert out.returncode == 0, out.stderr
    assert (
        "KXTEST-A  VALID" in out.stdout
        and "0.4200" in out.stdout
        and "2.50" in out.stdout
        and "0.5000" in out.stdout
    )
    js = rig.cli("book", "KXTEST-A", "--json")
    assert json.loads(js.stdout)["top"]["mid_x2"] == 9200
    mv = rig.cli("scan", "movers", "--top", "20", "--window", "5m", "--json")
    assert mv.returncode == 0, mv.stderr

    def rows(answer: list[dict[str, Any]]) -> list[tuple[str, int]]:
        return [(r["ticker"], r["change_x2"]) for r in answer]

    assert rows(json.loads(mv.stdout)) == rows(rig.ask("movers", top=20, window_s=300))
    assert ("KXTEST-C", 500) in rows(json.loads(mv.stdout))
    table = rig.cli("scan", "movers", "--window", "5m")
    assert table.returncode == 0 and "KXTEST-C" in table.stdout and "+0.0250" in table.stdout
    sp = rig.cli("scan", "spreads", "--top", "2")
    assert sp.returncode == 0 and sp.stdout.splitlines()[3].split()[:2] == ["KXTEST-B", "0.0900"]
    missing = rig.cli("book", "KXNOPE")
    assert missing.returncode == 1 and "no book for 'KXNOPE'" in missing.stderr

    # A corrupt delta: INVALID on the bus, a snapshot request to the connector, VALID after the answer.
    rig.pub.publish(
        BookDelta(ticker="KXTEST-B", market_id="b", conn=1, sid=1, xseq=6, side="no", price=5100, delta=-9999)
    )
    assert rig.collect(lambda: any(c.tickers == ["KXTEST-B"] for c in rig.of(Control)))
    bad = [m for m in rig.of(BookState, "KXTEST-B") if not m.valid]
    assert bad and bad[0].reason == "negative_level" and bad[0].xseq == 6
    assert not rig.of(TopOfBook, "KXTEST-B")[-1].valid
    st = rig.cli("scan", "stale", "--json")
    assert [r["ticker"] for r in json.loads(st.stdout) if not r["valid"]] == ["KXTEST-B"]
    # Still INVALID after resync_timeout_s: asked again, and the gap filler too.
    assert rig.collect(
        lambda: any(c.target == "gapfill" and c.tickers == ["KXTEST-B"] for c in rig.of(Control))
    )
    rig.pub.publish(
        BookSnapshot(ticker="KXTEST-B", market_id="b", conn=1, sid=1, xseq=7, yes=[(4100, 10)], no=[])
    )
    assert rig.collect(lambda: rig.of(BookState, "KXTEST-B")[-1].valid)
    assert rig.ask("book", ticker="KXTEST-B", depth=5)["yes"] == [[4100, 10]]
    stats = rig.ask("stats")
    assert stats["valid"] == 3 and stats["invalid"] == 0 and stats["deltas_applied"] == 2


def test_gap_sample_stream_through_the_worker_never_publishes_a_wrong_book_as_valid(rig: Rig) -> None:
    msgs, truth = gap_sample_stream()
    for m in msgs:  # one message per frame, as the connector sends them
        rig.pub.publish(m)
    last = msgs[-1]
    assert rig.collect(lambda: any(t.ts_recv == last.ts_recv for t in rig.of(TopOfBook, A)))
    for t, recovery_ts in ((A, 1010), (B, 1012)):  # ts_recv of the get_snapshot answers
        states = rig.of(BookState, t)
        out = sorted(rig.of(BookState, t) + rig.of(TopOfBook, t), key=lambda m: rig.seen.index(m))
        first_bad = next(i for i, m in enumerate(out) if isinstance(m, BookState) and not m.valid)
        after = [m for m in out[first_bad:] if m.valid]
        assert after, "it recovers"
        assert all(m.ts_recv >= recovery_ts for m in after), [(type(m).__name__, m.ts_recv) for m in after]
        assert [s.valid for s in states] == [True, False, True]
        ans = rig.ask("book", ticker=t, depth=0)
        assert ans["valid"]
        assert [tuple(x) for x in ans["yes"]] == truth[t].levels(0)
        assert [tuple(x) for x in ans["no"]] == truth[t].levels(1)
        assert ans["hash"] == f"{truth[t].full_hash() & 0xFFFFFFFFFFFFFFFF:016x}"
    hashes = rig.ask("hashes", tickers=[A, B])
    assert set(hashes) == {A, B} and all(h["valid"] for h in hashes.values())

    # Deltas lost on the bus itself (a jump in the publisher's seq): every book is suspect.
    rig.pub._seq["delta"] += 3  # as if three delta frames never arrived
    rig.pub.publish(
        BookDelta(ticker=A, market_id="a", conn=1, sid=1, xseq=20, side="yes", price=4300, delta=1)
    )
    assert rig.collect(lambda: {m.ticker for m in rig.of(BookState) if m.reason == "bus_drop"} == {A, B})
    assert rig.ask("stats")["invalid"] == 2
    assert rig.collect(lambda: {t for c in rig.of(Control) for t in c.tickers} >= {A, B})
