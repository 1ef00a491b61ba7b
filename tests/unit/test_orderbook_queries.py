"""Control-socket answers (book, movers, spreads, stale) and their human rendering."""

from __future__ import annotations

import argparse

import pytest

from services.cli import bookview as render
from services.cli.commands.scan import duration
from services.orderbook import queries
from shared.book.builder import Builder
from shared.messages import Trade
from tests.unit.test_orderbook_core import T, delta, meta, snap


def market(b: Builder, t: str, sid: int, yes_bid: int, no_bid: int, now: float) -> None:
    b.apply_many([meta(t=t), snap(t=t, sid=sid, yes=[(yes_bid, 100)], no=[(no_bid, 200)])], now)


def test_book_answer_has_exact_levels_top_and_validity() -> None:
    b = Builder()
    market(b, T, 1, 4300, 5500, 1.0)
    b.apply(delta("yes", 4200, 50, 2), 2.0)
    b.touch(2.0)
    ans = queries.book(b, T, 1, 3.0)
    assert ans["valid"] and ans["reason"] == "" and ans["xseq"] == 2
    assert ans["yes"] == [(4300, 100)] and ans["no"] == [(5500, 200)]
    assert ans["levels"] == {"yes": 2, "no": 1} and ans["tick_checked"]
    assert ans["top"] == {
        "yes_bid": 4300,
        "yes_bid_size": 100,
        "yes_ask": 4500,
        "yes_ask_size": 200,
        "no_bid": 5500,
        "no_ask": 5700,
        "mid_x2": 8800,
        "spread": 200,
    }
    assert ans["age_s"] == 1.0 and len(ans["hash"]) == 16
    assert len(queries.book(b, T, 0, 3.0)["yes"]) == 2
    with pytest.raises(queries.QueryError, match="no book"):
        queries.book(b, "NOPE", 5, 3.0)
    with pytest.raises(queries.QueryError):
        queries.book(b, T, -1, 3.0)
    b.apply(delta("yes", 4300, -500, 3), 4.0)
    bad = queries.book(b, T, 5, 4.0)
    assert not bad["valid"] and bad["reason"] == "negative_level" and bad["top"] is None


def test_movers_rank_by_mid_change_over_the_window_against_the_sample_before_it() -> None:
    b = Builder()
    for i, t in enumerate(["A", "B", "C", "D"]):
        market(b, t, i + 1, 4000, 5000, 0.0)  # mid 0.45 each
    queries.sample(b, 0.0, 3600)
    b.apply(delta("yes", 4500, 10, 2, t="A", sid=1), 50.0)  # mid -> 0.475 before the window opens
    queries.sample(b, 100.0, 3600)
    b.apply(delta("yes", 4800, 10, 3, t="A", sid=1), 200.0)  # +0.015 within the window
    b.apply(delta("no", 5900, 10, 2, t="B", sid=2), 200.0)  # YES ask 0.41: mid 0.405, -0.07
    b.apply(delta("no", 5000, -200, 3, t="C", sid=3), 200.0)  # one-sided: no mid
    rows = queries.movers(b, 250.0, top=10, window_s=150)
    assert [r["ticker"] for r in rows] == ["B", "A"]
    assert rows[0]["change_x2"] == (4000 + 4100) - 9000 and rows[0]["ref_mid_x2"] == 9000
    assert rows[1]["change_x2"] == (4800 + 5000) - (4500 + 5000)
    assert rows[1]["since_s"] == 150.0
    wide = queries.movers(b, 250.0, top=1, window_s=1000)
    assert [r["ticker"] for r in wide] == ["B"] and wide[0]["since_s"] == 250.0
    with pytest.raises(queries.QueryError):
        queries.movers(b, 250.0, top=5, window_s=0)


def test_movers_by_volume_count_trades_in_the_window() -> None:
    b = Builder()
    market(b, "A", 1, 4000, 5000, 0.0)
    market(b, "B", 2, 4000, 5000, 0.0)
    queries.sample(b, 0.0, 3600)
    b.apply(Trade(trade_id="1", ticker="A", yes_price=4000, no_price=6000, count=500, taker_side="yes"), 10.0)
    queries.sample(b, 20.0, 3600)
    b.apply(Trade(trade_id="2", ticker="B", yes_price=4000, no_price=6000, count=300, taker_side="no"), 30.0)
    rows = queries.movers(b, 40.0, top=5, window_s=15, by="volume")
    assert [(r["ticker"], r["volume"]) for r in rows] == [("B", 300)]
    rows = queries.movers(b, 40.0, top=5, window_s=40, by="volume")
    assert [(r["ticker"], r["volume"]) for r in rows] == [("A", 500), ("B", 300)]


def test_history_is_pruned_to_the_horizon_but_keeps_its_reference_sample() -> None:
    b = Builder()
    market(b, "A", 1, 4000, 5000, 0.0)
    for i in range(1, 50):
        b.apply(delta("yes", 4000, 1, i + 1, t="A"), float(i * 10))
        queries.sample(b, float(i * 10), horizon_s=100)
    ht = b.books["A"].hist_t
    assert ht is not None and len(ht) <= 12 and ht[0] <= (490 - 100) * 1000


def test_spreads_widest_and_narrowest_skip_invalid_and_one_sided_books() -> None:
    b = Builder()
    market(b, "A", 1, 4000, 5000, 0.0)  # spread 0.10
    market(b, "B", 2, 4900, 5000, 0.0)  # 0.01
    market(b, "C", 3, 3000, 5000, 0.0)  # 0.20
    market(b, "D", 4, 1000, 1000, 0.0)
    b.apply(delta("yes", 1000, -500, 2, t="D", sid=4), 0.0)  # INVALID
    b.apply_many([meta(t="E"), snap(t="E", sid=5, yes=[(100, 1)], no=[])], 0.0)  # one-sided
    assert [r["ticker"] for r in queries.spreads(b, top=5)] == ["C", "A", "B"]
    rows = queries.spreads(b, top=2, order="narrowest")
    assert [(r["ticker"], r["spread"]) for r in rows] == [("B", 100), ("A", 1000)]
    with pytest.raises(queries.QueryError):
        queries.spreads(b, top=2, order="sideways")


def test_stale_lists_invalid_and_quiet_books_oldest_first() -> None:
    b = Builder()
    market(b, "A", 1, 4000, 5000, 0.0)
    market(b, "B", 2, 4000, 5000, 0.0)
    market(b, "C", 3, 4000, 5000, 0.0)
    b.apply(delta("yes", 4000, 1, 2, t="B", sid=2), 90.0)
    b.apply(delta("yes", 4000, -500, 2, t="C", sid=3), 95.0)
    b.touch(95.0)
    rows = queries.stale(b, 100.0, older_than_s=60, top=10)
    assert [(r["ticker"], r["valid"], r["reason"]) for r in rows] == [
        ("A", True, ""),
        ("C", False, "negative_level"),
    ]
    assert rows[0]["age_s"] == 100.0 and rows[1]["invalid_for_s"] == 5.0


def test_rendering_shows_dollars_exactly() -> None:
    assert render.mid(8801) == "0.44005" and render.mid(8800) == "0.4400" and render.mid(None) == "-"
    assert render.implied(8801) == "44.005%"
    assert render.signed_mid(-200) == "-0.0100" and render.signed_mid(3) == "+0.00015"
    b = Builder()
    market(b, T, 1, 4300, 5500, 1.0)
    text = render.book(queries.book(b, T, 10, 1.0))
    assert "VALID" in text and "0.4300" in text and "1.00" in text and "0.4500" in text and "44.000%" in text
    b.apply(delta("yes", 4300, -500, 2), 2.0)
    text = render.book(queries.book(b, T, 10, 2.0))
    assert "INVALID (negative_level)" in text and "implied" not in text
    b2 = Builder()
    market(b2, "A", 1, 4000, 5000, 0.0)
    table = render.spreads(queries.spreads(b2, top=1), "widest")
    assert table.splitlines()[0] == "widest spreads"
    assert table.splitlines()[-1].split() == ["A", "0.1000", "0.4000", "0.5000", "1.00", "2.00", "0.4500"]


def test_durations_parse_like_the_cli_says() -> None:
    assert duration("90") == duration("90s") == 90.0
    assert duration("5m") == 300.0 and duration("1h") == 3600.0 and duration("1.5m") == 90.0
    for bad in ("", "m", "5x", "-1", "0"):
        with pytest.raises(argparse.ArgumentTypeError):
            duration(bad)
