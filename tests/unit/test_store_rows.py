"""Row types: one per append table, fields = its columns in order; rows built by name."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from shared.store import rows
from shared.store.rows import ROW_TYPES, LifecycleRow, TradeRow, builder
from shared.store.schema import APPEND


def test_every_append_table_has_its_row_type_in_column_order() -> None:
    assert set(ROW_TYPES) == set(APPEND)
    for table, row in ROW_TYPES.items():
        assert row._fields == APPEND[table].columns  # type: ignore[attr-defined]


def test_check_refuses_two_swapped_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    class Swapped(NamedTuple):  # trades with yes_price and no_price the other way round
        trade_id: str
        ticker: str
        no_price: int
        yes_price: int
        count: int
        taker_side: str
        is_block_trade: bool
        ts: int
        recv: int

    monkeypatch.setitem(rows.ROW_TYPES, "trades", Swapped)
    with pytest.raises(TypeError, match="Swapped fields"):
        rows.check()


def test_builder_builds_by_name_in_column_order_and_refuses_unknown_names() -> None:
    make = builder(TradeRow)
    values = dict(trade_id="t", ticker="k", yes_price=1, no_price=2, count=3, taker_side="no",
                  is_block_trade=False, ts=4, recv=5, source="rest")  # fmt: skip
    shuffled = dict(reversed(list(values.items())))
    assert make(**shuffled) == tuple(TradeRow(**values)) == tuple(values.values())
    with pytest.raises(TypeError):
        make(**values, price=6)
    with pytest.raises(TypeError):
        make(**{k: v for k, v in values.items() if k != "count"})
    with pytest.raises(TypeError):
        make(*values.values())  # keyword only: no positional rows
    # Defaults are the row type's own.
    life = builder(LifecycleRow)(ticker="x", event_type="created", ts=1, recv=2)
    assert life == tuple(LifecycleRow(ticker="x", event_type="created", ts=1, recv=2))
