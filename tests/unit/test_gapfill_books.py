"""REST orderbooks -> resync snapshots: exact units, sorted, no sequence, source rest."""

from __future__ import annotations

import msgspec
import pytest

from services.gapfill.books import rest_snapshot
from shared.kalshi.rest_models import MarketOrderbook
from shared.units import UnitError


def book(yes: object, no: object) -> MarketOrderbook:
    body = {"ticker": "KXNFLGAME-26JAN04BALPIT-PIT", "orderbook_fp": {"yes_dollars": yes, "no_dollars": no}}
    return msgspec.json.decode(msgspec.json.encode(body), type=MarketOrderbook)


def test_levels_in_exact_units_ascending() -> None:
    s = rest_snapshot(book([["0.4300", "25.00"], ["0.0100", "1.50"]], [["0.5600", "3.00"]]), 42)
    assert s.yes == [(100, 150), (4300, 2500)] and s.no == [(5600, 300)]
    assert (s.source, s.conn, s.sid, s.xseq, s.ts_recv, s.ts_exch) == ("rest", 0, 0, 0, 42, None)
    assert s.topic() == "snap.KXNFLGAME-26JAN04BALPIT-PIT"


def test_empty_sides_and_bad_levels() -> None:
    s = rest_snapshot(book(None, []), 1)
    assert s.yes == [] and s.no == []
    with pytest.raises(UnitError):
        rest_snapshot(book([["0.43001", "1.00"]], []), 1)
    with pytest.raises(UnitError, match="twice"):
        rest_snapshot(book([["0.4300", "1.00"], ["0.43", "2.00"]], []), 1)
