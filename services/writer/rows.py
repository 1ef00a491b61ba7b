"""Message -> database rows (pure): one mapper per durable message kind.

Rows are the row types of :mod:`shared.store.rows` (tuples in the column order of
:mod:`shared.store.schema`), built by field name. Timestamps are
integer microseconds since the Unix epoch, the form both stores hand to their driver
(SQLite stores them as is; the PostgreSQL store gives its connection an integer codec
for timestamptz): no datetime object is built per row. State tables get *upserts*: a
key, the columns the message knows, and their values.

Poll snapshots identical to the previous one for the same market (same prices,
sizes, volume, open interest and status) produce no row: polling every few seconds
would otherwise store the same line thousands of times.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from services.writer.account_rows import ACCOUNT_MAPPERS
from services.writer.rowtime import HOUR_NS as HOUR_NS  # re-exported: core, batches, tests
from services.writer.rowtime import HOUR_US as HOUR_US
from services.writer.rowtime import Row, json_text, opt_us, times_us
from shared.messages import (
    BookDelta,
    BookSnapshot,
    EventLifecycle,
    FeeUpdate,
    Gap,
    MarketLifecycle,
    MarketMeta,
    Message,
    PollContent,
    PollSnapshot,
    Signal,
    Ticker,
    Trade,
    WorkerEvent,
)
from shared.store.rows import (
    DeltaRow,
    GapRow,
    LifecycleRow,
    SignalRow,
    SnapshotRow,
    TickRow,
    TradeRow,
    WorkerEventRow,
    builder,
)

_ts = times_us
_opt_ms = opt_us


class BatchBuilder:
    """Accumulates the rows and upserts of a batch of messages, in message order."""

    __slots__ = ("polls", "rows", "state", "unchanged_polls")

    def __init__(self, polls: dict[str, PollContent]) -> None:
        #: ticker -> content of the last poll snapshot stored (updated as rows are built).
        self.polls = polls
        self.rows: defaultdict[str, list[Row]] = defaultdict(list)
        #: (state table, key) -> the columns set on that row, merged in message order.
        self.state: dict[tuple[str, Any], dict[str, Any]] = {}
        self.unchanged_polls = 0

    def add(self, m: Message) -> bool:
        """Map one message; False when its kind is not stored."""
        mapper = MAPPERS.get(type(m))
        if mapper is None:
            return False
        mapper(self, m)
        return True

    def add_run(self, msgs: list[Message]) -> None:
        """Map messages of one stored kind (the batch path: one lookup per run)."""
        many = RUN_MAPPERS.get(type(msgs[0]))
        if many is not None:
            many(self, msgs)
            return
        mapper = MAPPERS[type(msgs[0])]
        for m in msgs:
            mapper(self, m)

    def upsert(self, table: str, key: Any, values: dict[str, Any], updated_us: int) -> None:
        """Set ``values`` (and ``updated``) on the row ``key`` of a state table; with no
        values, only make sure the row exists.

        Merging per row keeps the outcome of a batch equal to applying its messages one
        by one, whatever the batch boundaries.
        """
        entry = self.state.setdefault((table, key), {})
        if values:
            entry.update(values)
            entry["updated"] = updated_us
        else:
            entry.setdefault("updated", updated_us)

    def upsert_groups(self) -> list[tuple[str, tuple[str, ...], list[Row]]]:
        """State rows grouped by the columns they set: (table, columns after the key, rows)."""
        groups: dict[tuple[str, tuple[str, ...]], list[Row]] = {}
        for (table, key), entry in self.state.items():
            cols = (*sorted(c for c in entry if c != "updated"), "updated")
            groups.setdefault((table, cols), []).append((key, *(entry[c] for c in cols)))
        return [(table, cols, rows) for (table, cols), rows in groups.items()]


# Row builders by field name (see shared.store.rows.builder).
_delta_of = builder(DeltaRow)
_snapshot_of = builder(SnapshotRow)
_tick_of = builder(TickRow)
_trade_of = builder(TradeRow)
_lifecycle_of = builder(LifecycleRow)
_gap_of = builder(GapRow)
_signal_of = builder(SignalRow)
_worker_event_of = builder(WorkerEventRow)

#: The markets columns a lifecycle event or a MarketMeta may know the strike of.
STRIKES = ("strike_type", "floor_strike", "cap_strike")


def _delta_row(m: BookDelta) -> Row:
    ts, recv = _ts(m)
    return _delta_of(
        conn=m.conn, sid=m.sid, xseq=m.xseq, ticker=m.ticker, side=m.side, price=m.price,
        delta=m.delta, ts=ts, recv=recv,
    )  # fmt: skip


def _delta(b: BatchBuilder, m: BookDelta) -> None:
    b.rows["book_deltas"].append(_delta_row(m))


def _deltas(b: BatchBuilder, msgs: list[BookDelta]) -> None:
    # The bulk of the traffic, and the one positional row: even a keyword call costs twice a
    # tuple literal per row. _check_deltas (at import) proves it equals _delta_row.
    append = b.rows["book_deltas"].append
    for m in msgs:
        recv = m.ts_recv // 1000
        ts = m.ts_exch * 1000 if m.ts_exch is not None else recv
        append((m.conn, m.sid, m.xseq, m.ticker, m.side, m.price, m.delta, ts, recv))


def _check_deltas() -> None:
    """The run path builds what the by-name path does (a distinct value in every column)."""
    probe = BookDelta(
        ticker="probe",
        market_id="m",
        side="no",
        price=3,
        delta=-4,
        conn=5,
        sid=6,
        xseq=7,
        ts_exch=8,
        ts_recv=9_000,
    )
    b = BatchBuilder({})
    _deltas(b, [probe])
    if b.rows["book_deltas"] != [_delta_row(probe)]:
        raise TypeError(f"_deltas builds {b.rows['book_deltas']}, not {[_delta_row(probe)]}")


def _snapshot(b: BatchBuilder, m: BookSnapshot) -> None:
    ts, recv = _ts(m)
    row = _snapshot_of(
        ticker=m.ticker, recv=recv, conn=m.conn, sid=m.sid, xseq=m.xseq, market_id=m.market_id,
        source=m.source, yes=json_text(m.yes), no=json_text(m.no), ts=ts,
    )  # fmt: skip
    b.rows["book_snapshots"].append(row)


def _ticker(b: BatchBuilder, m: Ticker) -> None:
    ts, recv = _ts(m)
    row = _tick_of(
        ticker=m.ticker, ts=ts, source="ws", recv=recv, market_id=m.market_id, status=None,
        last_price=m.price, yes_bid=m.yes_bid, yes_ask=m.yes_ask, yes_bid_size=m.yes_bid_size,
        yes_ask_size=m.yes_ask_size, last_trade_size=m.last_trade_size, volume=m.volume,
        open_interest=m.open_interest, dollar_volume=m.dollar_volume,
        dollar_open_interest=m.dollar_open_interest, fallback=False, pub=m.pub, epoch=m.epoch,
        seq=m.seq,
    )  # fmt: skip
    b.rows["ticks"].append(row)


def _poll(b: BatchBuilder, m: PollSnapshot) -> None:
    content = m.content()
    if b.polls.get(m.ticker) == content:
        b.unchanged_polls += 1
        return
    b.polls[m.ticker] = content
    ts, recv = _ts(m)
    row = _tick_of(
        ticker=m.ticker, ts=ts, source="poll", recv=recv, market_id=None, status=m.status,
        last_price=m.last_price, yes_bid=m.yes_bid, yes_ask=m.yes_ask, yes_bid_size=m.yes_bid_size,
        yes_ask_size=m.yes_ask_size, last_trade_size=None, volume=m.volume,
        open_interest=m.open_interest, dollar_volume=None, dollar_open_interest=None,
        fallback=m.fallback, pub=m.pub, epoch=m.epoch, seq=m.seq,
    )  # fmt: skip
    b.rows["ticks"].append(row)


def _trade(b: BatchBuilder, m: Trade) -> None:
    ts, recv = _ts(m)
    row = _trade_of(
        trade_id=m.trade_id, ticker=m.ticker, yes_price=m.yes_price, no_price=m.no_price,
        count=m.count, taker_side=m.taker_side, is_block_trade=m.is_block_trade, ts=ts, recv=recv,
        source=m.source,
    )  # fmt: skip
    b.rows["trades"].append(row)


def _lifecycle_row(
    b: BatchBuilder,
    m: Message,
    ticker: str,
    event_type: str,
    detail: dict[str, Any] | None = None,
    **cols: Any,
) -> None:
    ts, recv = _ts(m)
    # cols are named after lifecycle's columns; a name it lacks is a TypeError here.
    row = _lifecycle_of(
        ticker=ticker, event_type=event_type, ts=ts, recv=recv,
        detail=None if detail is None else json_text(detail), **cols,
    )  # fmt: skip
    b.rows["lifecycle"].append(row)


def _market_lifecycle(b: BatchBuilder, m: MarketLifecycle) -> None:
    cols: dict[str, Any] = {
        "event_ticker": m.event_ticker,
        "open_ts": _opt_ms(m.open_ms),
        "close_ts": _opt_ms(m.close_ms),
        "result": m.result,
        "determination_ts": _opt_ms(m.determination_ms),
        "settlement_value": m.settlement_value,
        "settled_ts": _opt_ms(m.settled_ms),
        "is_deactivated": m.is_deactivated,
        "price_ranges": None if m.price_ranges is None else json_text(m.price_ranges),
        "title": m.title,
        "yes_sub_title": m.yes_sub_title,
        "no_sub_title": m.no_sub_title,
    }
    # metadata_updated's strikes have no lifecycle column: its detail keeps them.
    strikes = _strikes(m)
    _lifecycle_row(b, m, m.ticker, m.event_type, strikes or None, **cols)
    # The market row learns whatever this event carries (creation: titles and times; ...).
    known = {
        k: v
        for k in ("event_ticker", "title", "yes_sub_title", "no_sub_title", "open_ts", "close_ts", "result")
        if (v := cols[k]) is not None
    }
    if cols["price_ranges"] is not None:
        known["price_ranges"] = cols["price_ranges"]
    known.update(strikes)
    b.upsert("markets", m.ticker, known, _ts(m)[0])


def _strikes(m: MarketLifecycle | MarketMeta) -> dict[str, str]:
    """The strikes the message knows. None is "not said" (REST markets and most lifecycle
    events carry none), so it never erases a strike stored from ``metadata_updated``."""
    return {k: v for k in STRIKES if (v := getattr(m, k)) is not None}


def _event_lifecycle(b: BatchBuilder, m: EventLifecycle) -> None:
    detail = {
        "series_ticker": m.series_ticker,
        "subtitle": m.subtitle,
        "collateral_return_type": m.collateral_return_type,
        "strike_ms": m.strike_ms,
        "strike_period": m.strike_period,
    }
    _lifecycle_row(
        b, m, m.event_ticker, "event_lifecycle", detail, event_ticker=m.event_ticker, title=m.title
    )
    ts = _ts(m)[0]
    b.upsert(
        "events",
        m.event_ticker,
        {
            "series_ticker": m.series_ticker,
            "title": m.title,
            "subtitle": m.subtitle,
            "collateral_return_type": m.collateral_return_type,
            "strike_ts": _opt_ms(m.strike_ms),
            "strike_period": m.strike_period,
        },
        ts,
    )
    b.upsert("series", m.series_ticker, {}, ts)


def _fee(b: BatchBuilder, m: FeeUpdate) -> None:
    values = {
        "fee_type_override": m.fee_type_override,
        "fee_multiplier_ppm_override": m.fee_multiplier_ppm_override,
    }
    _lifecycle_row(b, m, m.event_ticker, "event_fee_update", values, event_ticker=m.event_ticker)
    # None clears an override, so both columns are always set.
    b.upsert("events", m.event_ticker, values, _ts(m)[0])


def _meta(b: BatchBuilder, m: MarketMeta) -> None:
    ts = _ts(m)[0]
    b.upsert(
        "markets",
        m.ticker,
        {
            "event_ticker": m.event_ticker,
            "series_ticker": m.series_ticker,
            "title": m.title,
            "yes_sub_title": m.yes_sub_title,
            "no_sub_title": m.no_sub_title,
            "status": m.status,
            "market_type": m.market_type,
            "category": m.category,
            "open_ts": _opt_ms(m.open_ms),
            "close_ts": _opt_ms(m.close_ms),
            "expiration_ts": _opt_ms(m.expiration_ms),
            "price_ranges": json_text(m.price_ranges),
            "fee_type": m.fee_type,
            "fee_multiplier_ppm": m.fee_multiplier_ppm,
            "result": m.result,
            **_strikes(m),
        },
        ts,
    )
    b.upsert("events", m.event_ticker, {"series_ticker": m.series_ticker}, ts)
    b.upsert("series", m.series_ticker, {"category": m.category} if m.category else {}, ts)


def _gap(b: BatchBuilder, m: Gap) -> None:
    ts, recv = _ts(m)
    row = _gap_of(
        conn=m.conn, sid=m.sid, expected=m.expected, status=m.status, received=m.received,
        tickers=json_text(m.tickers), reason=m.reason, method=m.method,
        detected=_opt_ms(m.detected_ms or None), recovered=_opt_ms(m.recovered_ms), ts=ts, recv=recv,
    )  # fmt: skip
    b.rows["gaps"].append(row)


def _signal(b: BatchBuilder, m: Signal) -> None:
    ts, recv = _ts(m)
    row = _signal_of(
        strategy=m.strategy, ticker=m.ticker, side=m.side, ts=ts, recv=recv, price=m.price,
        size=m.size, fair_ppm=m.fair_ppm, edge=m.edge, fees=m.fees, legs=json_text(m.legs),
        detail=m.detail,
    )  # fmt: skip
    b.rows["signals"].append(row)


def _worker_event(b: BatchBuilder, m: WorkerEvent) -> None:
    ts, recv = _ts(m)
    row = _worker_event_of(
        worker=m.worker, ts=ts, event=m.event, recv=recv, pid=m.pid, exit_code=m.exit_code,
        detail=m.detail,
    )  # fmt: skip
    b.rows["worker_events"].append(row)


MAPPERS: dict[type[Any], Callable[[BatchBuilder, Any], None]] = {
    BookDelta: _delta,
    BookSnapshot: _snapshot,
    Ticker: _ticker,
    PollSnapshot: _poll,
    Trade: _trade,
    MarketLifecycle: _market_lifecycle,
    EventLifecycle: _event_lifecycle,
    FeeUpdate: _fee,
    MarketMeta: _meta,
    Gap: _gap,
    Signal: _signal,
    WorkerEvent: _worker_event,
    **ACCOUNT_MAPPERS,
}

#: Mappers of a whole run of one kind, for the kinds that dominate traffic.
RUN_MAPPERS: dict[type[Any], Callable[[BatchBuilder, Any], None]] = {BookDelta: _deltas}

#: Kind tags the writer stores (every durable kind of the bus schema but UNSTORED_KINDS).
STORED_KINDS: frozenset[str] = frozenset(t.__struct_config__.tag for t in MAPPERS)

#: Durable kinds deliberately not stored yet (none today: fills, positions, orders and order
#: groups were, until they got their tables). The writer does not subscribe to them; met in a
#: journal replay they are skipped and counted.
UNSTORED_KINDS: frozenset[str] = frozenset()

_check_deltas()
