"""REST markets -> PollSnapshot in exact units; only changes are published."""

from __future__ import annotations

import msgspec
import pytest

from services.poller.polls import Published, poll_snapshot
from shared.kalshi.rest_models import Market
from shared.messages import MarketMeta
from shared.units import UnitError


def market(**kw: str) -> Market:
    base = {
        "ticker": "KXNBAGAME-26NOV03LALBOS-LAL",
        "event_ticker": "KXNBAGAME-26NOV03LALBOS",
        "status": "active",
        "yes_bid_dollars": "0.4300",
        "yes_bid_size_fp": "25.00",
        "yes_ask_dollars": "0.4500",
        "yes_ask_size_fp": "10.50",
        "last_price_dollars": "0.4400",
        "volume_fp": "1234.00",
        "open_interest_fp": "99.99",
    }
    return msgspec.convert({**base, **kw}, Market)


def test_top_of_book_and_stats_are_exact_integers() -> None:
    p = poll_snapshot(market(), 7, fallback=True)
    assert (p.yes_bid, p.yes_bid_size, p.yes_ask, p.yes_ask_size) == (4300, 2500, 4500, 1050)
    assert (p.last_price, p.volume, p.open_interest, p.fallback, p.ts_recv) == (4400, 123400, 9999, True, 7)
    assert p.ts_exch is None  # receive time keys the stored row: two polls never collide


def test_empty_sides_and_no_trade_are_none() -> None:
    p = poll_snapshot(
        market(
            yes_bid_dollars="0.0000", yes_bid_size_fp="0.00", yes_ask_dollars="1.0000", last_price_dollars=""
        ),
        1,
        fallback=False,
    )
    assert (p.yes_bid, p.yes_bid_size, p.yes_ask, p.yes_ask_size, p.last_price) == (None, 0, None, 0, None)


def test_values_finer_than_the_unit_are_rejected() -> None:
    with pytest.raises(UnitError):
        poll_snapshot(market(yes_bid_dollars="0.43005"), 1, fallback=False)


def test_only_changes_and_mode_switches_are_published() -> None:
    pub = Published()
    assert pub.poll_changed(poll_snapshot(market(), 1, fallback=False))
    assert not pub.poll_changed(poll_snapshot(market(), 2, fallback=False))
    assert pub.poll_changed(poll_snapshot(market(), 3, fallback=True))  # the fallback began
    assert pub.poll_changed(poll_snapshot(market(yes_bid_size_fp="26.00"), 4, fallback=True))
    assert pub.unchanged == 1
    meta = MarketMeta(ticker="T", event_ticker="E", series_ticker="S", title="t", yes_sub_title="y",
                      no_sub_title="n", status="active", ts_exch=1, ts_recv=1)  # fmt: skip
    assert pub.meta_changed(meta)
    assert not pub.meta_changed(msgspec.structs.replace(meta, ts_exch=2, ts_recv=2, seq=9))
    assert pub.meta_changed(msgspec.structs.replace(meta, status="closed"))
    pub.forget("T")
    assert pub.meta_changed(msgspec.structs.replace(meta, status="closed"))
