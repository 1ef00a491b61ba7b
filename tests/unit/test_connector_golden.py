"""Golden replay: a recorded frame sequence through the session core must produce exactly
the recorded bus output (``tests/fixtures/kalshi/ws_session_*.jsonl`` -> ``*.golden.json``).

The sequence: subscribe replies, two snapshots, deltas, a ticker, a duplicate, a trade, a
seq gap (5..6 missing), deltas while recovering (dropped), the get_snapshot ``ok``, the
recovery snapshots (one of them after a torn frame and an unknown type), then lifecycle.

Regenerate after an intended change with ``KXFEED_REGEN_GOLDEN=1`` and review the diff.
"""

from __future__ import annotations

from services.connector.batching import by_market
from services.connector.session import Session
from services.connector.validity import Recovery

from .test_connector_support import FIX, GOLDEN_MARKETS, GOLDEN_TS, assert_golden, replay

LAL, BOS = GOLDEN_MARKETS
TS = GOLDEN_TS


def test_gap_recovery_session_matches_golden() -> None:
    out, cmds, s = replay("ws_session_gap_recovery")
    assert_golden("ws_session_gap_recovery", out, cmds)
    # The end state, stated plainly as well.
    assert s.books[LAL].yes == {4100: 1000, 4200: 550} and s.books[LAL].no == {}
    assert s.books[BOS].yes == {5500: 2150} and s.books[BOS].no == {4200: 750}
    assert not s.recovery.open and not s.recovery.invalid


def test_grouping_keeps_each_markets_order() -> None:
    out, _, _ = replay("ws_session_gap_recovery")
    s = Session(42, recovery=Recovery(), max_markets=500)
    s.start([LAL, BOS], 0.0)
    s.frames((FIX / "ws_session_gap_recovery.jsonl").read_bytes().splitlines(), TS, 1.0)
    grouped = by_market(s.take())
    for t in (LAL, BOS):
        mine = [
            m for m in grouped if getattr(m, "ticker", None) == t and m.kind in ("snap", "delta", "bookstate")
        ]
        assert [m.kind for m in mine] == [
            m["kind"] for m in out if m.get("ticker") == t and m["kind"] in ("snap", "delta", "bookstate")
        ]
    gaps = [i for i, m in enumerate(grouped) if m.kind == "gap"]
    assert len(gaps) == 2  # open, then recovered: a barrier each
