"""The trade backfill's checkpoint: a restarted gap filler covers its own downtime.

The file round-trips and is read totally (torn, foreign, oversized: None, never an error); the
ledger's checkpoint reaches back to every window not yet published; a resumed ledger opens one
window for every market from there and still knows the connectors' epochs; the shell saves
when the ledger changed, resumes from the file (or, torn, from the longest window it fetches),
and does not publish again what the database already holds."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from services.gapfill import checkpoint
from services.gapfill.checkpoint import Checkpoint
from services.gapfill.tradefill import TradeBackfill
from services.gapfill.trades import OVERLAP_MS, RESTART, SeenTrade, TradeLedger, Window
from shared.log import BurstLog
from shared.messages import Message, Trade
from tests.unit.test_gapfill_tradefill import T0, FakeRest, live, rest_trade


def test_the_file_round_trips_and_anything_else_reads_as_torn(tmp_path: Path) -> None:
    cp = Checkpoint(T0, T0 - 5_000, {"connector": 7})
    path = tmp_path / "gapfill" / "gapfill.trades.json"
    assert checkpoint.read(path) == (None, False)  # a first start
    checkpoint.write(path, cp)
    assert checkpoint.read(path) == (cp, True)
    assert not list(path.parent.glob(".*.tmp")), "the temporary file was renamed"
    for bad in (b"", b"{", b"null", b'{"newest_ms": -1, "unfinished_ms": null, "epochs": {}}',
                b'{"newest_ms": 1, "unfinished_ms": null, "epochs": {"c": "x"}}',
                b'{"newest_ms": 1, "unfinished_ms": null, "epochs": {}, "other": 1}',
                b"\xff\xfe" * 10, b" " * (2 << 20)):  # fmt: skip
        path.write_bytes(bad)
        assert checkpoint.read(path) == (None, True), bad[:40]


def test_the_checkpoint_reaches_back_to_every_window_not_published() -> None:
    ledger = TradeLedger(600_000, started_ms=T0)
    assert ledger.checkpoint() == Checkpoint(T0, None, {})  # nothing seen: from the start
    ledger.seen(SeenTrade("a", "A", T0 + 9_000), 0.0)
    ledger.publisher("connector", 1)
    ledger.trigger(None, "disconnect", T0 + 9_500, 1.0)
    cp = ledger.checkpoint()
    assert cp == Checkpoint(T0 + 9_000, T0 + 9_000 - OVERLAP_MS, {"connector": 1})
    ledger.fetching.append(Window(None, "x", T0 + 1_000, T0 + 2_000, T0, False))  # taken by due()
    assert ledger.checkpoint().unfinished_ms == T0 + 1_000
    assert ledger.checkpoint().resume_ms == T0 + 1_000


def test_a_resumed_ledger_covers_every_market_from_the_checkpoint() -> None:
    ledger = TradeLedger(600_000, started_ms=T0 + 60_000)
    ledger.resume(Checkpoint(T0 + 9_000, None, {"connector": 1}), T0 + 30_000, 5.0)
    (p,) = ledger.pending
    assert (p.tickers, p.reason, p.start_ms) == (None, RESTART, T0 + 9_000 - OVERLAP_MS)
    ledger.seen(SeenTrade("b", "A", T0 + 31_000), 6.0)  # the first live trade: the window ends
    assert p.end_ms == T0 + 31_000
    assert ledger.publisher("connector", 2), "an epoch changed while we were down is a restart"
    ledger = TradeLedger(600_000)
    ledger.resume(Checkpoint(T0 + 9_000, T0 + 1_000, {}), T0 + 30_000, 5.0)
    assert ledger.pending[0].start_ms == T0 + 1_000  # an unfinished window reaches further back


def _shell(
    rest: FakeRest, state: Path, stored: set[str] | None = None
) -> tuple[TradeBackfill, list[Message]]:
    out: list[Message] = []

    async def in_store(ids: list[str]) -> set[str]:
        return {i for i in ids if stored is not None and i in stored}

    tb = TradeBackfill(
        rest,  # type: ignore[arg-type]
        600.0, "gapfill", BurstLog(logging.getLogger("test.checkpoint")), out.extend,
        state=state, stored=in_store,
    )  # fmt: skip
    return tb, out


def test_the_shell_saves_resumes_and_skips_what_is_stored(tmp_path: Path) -> None:
    state = tmp_path / "gapfill.trades.json"
    tb, _ = _shell(FakeRest([]), state)
    tb.resume()
    assert tb.ledger.pending == [], "no file: a first start opens nothing"
    tb.on_message(live(1, "A", T0 + 1_000), 0.0)
    asyncio.run(tb.save(10.0))
    assert checkpoint.read(state)[0] == Checkpoint(T0 + 1_000, None, {"connector": 1})
    tb.on_message(live(2, "A", T0 + 2_000), 10.5)
    asyncio.run(tb.save(10.5))  # within a second of the last save: not yet
    assert checkpoint.read(state)[0] == Checkpoint(T0 + 1_000, None, {"connector": 1})
    asyncio.run(tb.save(11.0))
    assert checkpoint.read(state)[0] == Checkpoint(T0 + 2_000, None, {"connector": 1})

    # Killed here: the next process resumes from the checkpoint, for every market.
    rest = FakeRest([rest_trade(2, "A", T0 + 2_000), rest_trade(3, "B", T0 + 3_000),
                     rest_trade(4, "A", T0 + 4_000)])  # fmt: skip
    tb, out = _shell(rest, state, stored={"t2", "t3"})
    tb.resume()
    (p,) = tb.ledger.pending
    assert p.reason == RESTART and p.tickers is None and p.start_ms == T0 + 2_000 - OVERLAP_MS
    w = Window(None, p.reason, p.start_ms, T0 + 5_000, T0, False)
    asyncio.run(tb.backfill(w))
    got = [m.trade_id for m in out if isinstance(m, Trade)]
    assert got == ["t4"], "t2 and t3 are in the database already"


@pytest.mark.parametrize("content", [b"", b"garbage"])
def test_a_torn_checkpoint_backfills_the_longest_window(tmp_path: Path, content: bytes) -> None:
    state = tmp_path / "gapfill.trades.json"
    state.write_bytes(content)
    tb, _ = _shell(FakeRest([]), state)
    tb.resume()
    (p,) = tb.ledger.pending
    assert p.reason == RESTART and p.detected_ms - p.start_ms == 600_000 + OVERLAP_MS
