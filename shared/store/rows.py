"""One row type per append table, its fields the table's columns in :mod:`.schema` order.

A row is what the writer hands to the driver (``executemany``, COPY): a tuple in column
order. Declaring it as a NamedTuple lets rows be built by field name, so a mapper cannot
put a value in its neighbour's column; :func:`check` (run at import) fails when a type and
its table disagree on a name or an order. Mappers build rows with :func:`builder`'s
keyword-only functions: the same names and defaults, a plain tuple out, at a fifth of the
NamedTuple's own keyword call (the writer builds every stored row). Timestamps are integer
microseconds since the Unix epoch (the stores' drivers take them so), JSON columns are text.
"""

from __future__ import annotations

import keyword
from collections.abc import Callable
from typing import Any, NamedTuple

from shared.store.schema import APPEND


class DeltaRow(NamedTuple):
    conn: int
    sid: int
    xseq: int
    ticker: str
    side: str
    price: int
    delta: int
    ts: int
    recv: int


class SnapshotRow(NamedTuple):
    ticker: str
    recv: int
    conn: int
    sid: int
    xseq: int
    market_id: str
    source: str
    yes: str
    no: str
    ts: int


class TickRow(NamedTuple):
    ticker: str
    ts: int
    source: str
    recv: int
    market_id: str | None
    status: str | None
    last_price: int | None
    yes_bid: int | None
    yes_ask: int | None
    yes_bid_size: int
    yes_ask_size: int
    last_trade_size: int | None
    volume: int
    open_interest: int
    dollar_volume: int | None
    dollar_open_interest: int | None
    fallback: bool
    pub: str
    epoch: int
    seq: int


class TradeRow(NamedTuple):
    trade_id: str
    ticker: str
    yes_price: int
    no_price: int
    count: int  # type: ignore[assignment]  # the column shadows tuple.count (never called on a row)
    taker_side: str
    is_block_trade: bool
    ts: int
    recv: int
    source: str = "ws"


class LifecycleRow(NamedTuple):
    ticker: str
    event_type: str
    ts: int
    recv: int
    event_ticker: str | None = None
    open_ts: int | None = None
    close_ts: int | None = None
    result: str | None = None
    determination_ts: int | None = None
    settlement_value: int | None = None
    settled_ts: int | None = None
    is_deactivated: bool | None = None
    price_ranges: str | None = None
    title: str | None = None
    yes_sub_title: str | None = None
    no_sub_title: str | None = None
    detail: str | None = None


class GapRow(NamedTuple):
    conn: int
    sid: int
    expected: int
    status: str
    received: int
    tickers: str
    reason: str
    method: str
    detected: int | None
    recovered: int | None
    ts: int
    recv: int


class SignalRow(NamedTuple):
    strategy: str
    ticker: str
    side: str
    ts: int
    recv: int
    price: int
    size: int
    fair_ppm: int
    edge: int
    fees: int
    legs: str
    detail: str


class WorkerEventRow(NamedTuple):
    worker: str
    ts: int
    event: str
    recv: int
    pid: int
    exit_code: int | None
    detail: str


class FillRow(NamedTuple):
    trade_id: str
    order_id: str
    ticker: str
    is_taker: bool
    side: str
    yes_price: int
    count: int  # type: ignore[assignment]  # the column shadows tuple.count (never called on a row)
    fee: int
    action: str
    post_position: int
    client_order_id: str | None
    ts: int
    recv: int
    subaccount: int | None


class PositionRow(NamedTuple):
    ticker: str
    ts: int
    recv: int
    position: int
    position_cost: int
    realized_pnl: int
    fees_paid: int
    volume: int
    pub: str
    epoch: int
    seq: int


class OrderRow(NamedTuple):
    order_id: str
    ts: int
    status: str
    yes_price: int
    fill_count: int
    remaining_count: int
    recv: int
    ticker: str
    side: str
    initial_count: int
    taker_fill_cost: int
    maker_fill_cost: int
    taker_fees: int | None
    maker_fees: int | None
    client_order_id: str | None
    order_group_id: str | None
    self_trade_prevention_type: str | None
    created_ts: int | None
    expiration_ts: int | None
    last_update_reason: str | None
    subaccount: int | None


class OrderGroupRow(NamedTuple):
    order_group_id: str
    event_type: str
    ts: int
    recv: int
    contracts_limit: int | None


#: table -> its row type (every append table has one).
ROW_TYPES: dict[str, type[tuple[object, ...]]] = {
    "book_deltas": DeltaRow,
    "book_snapshots": SnapshotRow,
    "ticks": TickRow,
    "trades": TradeRow,
    "lifecycle": LifecycleRow,
    "gaps": GapRow,
    "signals": SignalRow,
    "worker_events": WorkerEventRow,
    "fills": FillRow,
    "positions": PositionRow,
    "orders": OrderRow,
    "order_groups": OrderGroupRow,
}


def builder(row: type[tuple[object, ...]]) -> Callable[..., tuple[Any, ...]]:
    """``row(**values)`` as a keyword-only function returning a plain tuple in field order.

    A name it does not know, or a field left out that has no default, is a TypeError, as
    with the NamedTuple itself."""
    fields: tuple[str, ...] = row._fields  # type: ignore[attr-defined]
    defaults: dict[str, Any] = row._field_defaults  # type: ignore[attr-defined]
    for f in fields:  # column names become parameter names in generated source
        if not f.isidentifier() or keyword.iskeyword(f):
            raise TypeError(f"{row.__name__}: column {f!r} is not a Python name")
    params = ", ".join(f"{f}=_d[{f!r}]" if f in defaults else f for f in fields)
    src = f"def build_{row.__name__}(*, {params}):\n    return ({', '.join(fields)},)\n"
    namespace: dict[str, Any] = {"_d": defaults}
    exec(src, namespace)  # the source is made of the checked identifiers only
    fn: Callable[..., tuple[Any, ...]] = namespace[f"build_{row.__name__}"]
    fn.__doc__ = f"A {row.__name__} (as a plain tuple), by field name."
    return fn


def check() -> None:
    """Every append table has a row type whose fields are its columns, in order."""
    if set(ROW_TYPES) != set(APPEND):
        raise TypeError(f"row types {sorted(ROW_TYPES)} != append tables {sorted(APPEND)}")
    for table, row in ROW_TYPES.items():
        fields: tuple[str, ...] = row._fields  # type: ignore[attr-defined]
        if fields != APPEND[table].columns:
            raise TypeError(f"{row.__name__} fields {fields} != {table} columns {APPEND[table].columns}")


check()
