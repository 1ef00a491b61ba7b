"""Every sequenced channel is gap-checked (issue 15 item 3, the detection half): trade and the
lifecycle sid (market_lifecycle_v2, event_lifecycle, event_fee_update share its sequence)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from shared.messages import BookState, EventLifecycle, FeeUpdate, Gap, MarketLifecycle, Trade

from .test_connector_session import booted
from .test_connector_support import A, B, counted


def trade(sid: int, seq: int | None, tid: str, price: str = "0.5") -> dict[str, Any]:
    f: dict[str, Any] = {
        "type": "trade",
        "sid": sid,
        "msg": {
            "trade_id": tid,
            "market_ticker": A,
            "yes_price_dollars": price,
            "no_price_dollars": "0.5",
            "count_fp": "3.00",
            "taker_outcome_side": "yes",
        },
    }
    if seq is not None:
        f["seq"] = seq
    return f


def gaps(out: list[Any]) -> list[Gap]:
    return [m for m in out if isinstance(m, Gap)]


def test_a_trade_gap_is_counted_logged_once_and_published_naming_channel_and_markets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sc = booted()
    tsid = sc.sids["trade"][0]
    out = sc.feed(trade(tsid, 1, "t1"), trade(tsid, 2, "t2"))
    assert gaps(out) == [] and len([m for m in out if isinstance(m, Trade)]) == 2
    with caplog.at_level(logging.WARNING, logger="connector.session"):
        out = sc.feed(trade(tsid, 5, "t5"), trade(tsid, 6, "t6"), trade(tsid, 9, "t9"))
    g = gaps(out)
    assert [(x.expected, x.received) for x in g] == [(3, 5), (7, 9)]
    assert {x.reason for x in g} == {"trade_seq"} and all(x.status == "open" for x in g)
    # Its markets are logged; the Gap names none, or every book consumer would invalidate them.
    assert g[0].tickers == [] and g[0].sid == tsid
    assert [m for m in out if isinstance(m, BookState)] == []
    # Nothing dropped: every trade around the gaps is published.
    assert [m.trade_id for m in out if isinstance(m, Trade)] == ["t5", "t6", "t9"]
    assert counted(sc.s, "gaps", "trade_seq") == 2
    logged = [r for r in caplog.records if "sequence gap" in r.getMessage()]
    assert len(logged) == 1 and logged[0].ctx["markets"] == sorted([A, B])  # type: ignore[attr-defined]
    assert not sc.s.lifecycle_gaps  # a trade gap says nothing about the market set


def test_trades_without_seq_are_accepted_and_do_not_break_the_sequence() -> None:
    sc = booted()
    tsid = sc.sids["trade"][0]
    out = sc.feed(trade(tsid, 1, "t1"), trade(tsid, None, "tx"), trade(tsid, 2, "t2"))
    assert gaps(out) == [] and len([m for m in out if isinstance(m, Trade)]) == 3


def test_a_repeated_trade_seq_is_still_published_and_no_gap() -> None:
    sc = booted()
    tsid = sc.sids["trade"][0]
    out = sc.feed(trade(tsid, 1, "t1"), trade(tsid, 2, "t2"), trade(tsid, 2, "t2"), trade(tsid, 3, "t3"))
    assert gaps(out) == [] and len([m for m in out if isinstance(m, Trade)]) == 4


def test_an_unusable_trade_still_takes_its_seq() -> None:
    sc = booted()
    tsid = sc.sids["trade"][0]
    out = sc.feed(trade(tsid, 1, "t1"), trade(tsid, 2, "bad", price="abc"), trade(tsid, 3, "t3"))
    assert gaps(out) == []
    assert [m.trade_id for m in out if isinstance(m, Trade)] == ["t1", "t3"]


def test_lifecycle_event_lifecycle_and_fee_updates_share_the_lifecycle_sids_sequence() -> None:
    sc = booted()
    lsid = sc.sids["market_lifecycle_v2"][0]
    life = {
        "type": "market_lifecycle_v2",
        "sid": lsid,
        "seq": 1,
        "msg": {"market_ticker": A, "event_type": "activated"},
    }
    event = {"type": "event_lifecycle", "sid": lsid, "seq": 2, "msg": {"event_ticker": "KXA-26JAN01"}}
    fee = {
        "type": "event_fee_update",
        "sid": lsid,
        "seq": 4,
        "msg": {"event_ticker": "KXA-26JAN01", "fee_type_override": "flat", "fee_multiplier_override": 1},
    }
    out = sc.feed(life, event, fee)
    assert [type(m) for m in out if not isinstance(m, Gap)] == [MarketLifecycle, EventLifecycle, FeeUpdate]
    (g,) = gaps(out)
    assert (g.expected, g.received, g.reason, g.method) == (3, 4, "lifecycle_seq", "rediscover")
    assert g.tickers == [] and g.sid == lsid  # a global subscription: every market
    assert sc.s.lifecycle_gaps == [g]
    assert counted(sc.s, "gaps", "lifecycle_seq") == 1
