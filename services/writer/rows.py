"""Message -> database rows (pure): one mapper per durable message kind.

Rows are tuples in the column order of :mod:`shared.store.schema`. Timestamps are
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

import msgspec

from shared.messages import (
    BookDelta,
    BookSnapshot,
    EventLifecycle,
    FeeUpdate,
    Gap,
    MarketLifecycle,
    MarketMeta,
    Message,
    PollSnapshot,
    Signal,
    Ticker,
    Trade,
    WorkerEvent,
)

Row = tuple[Any, ...]
#: What makes two poll snapshots of one market "the same".
PollContent = tuple[str, int | None, int | None, int, int, int | None, int, int]

HOUR_NS = 3_600_000_000_000
HOUR_US = 3_600_000_000

_json = msgspec.json.Encoder()


def json_text(value: Any) -> str:
    return _json.encode(value).decode()


def poll_content(m: PollSnapshot) -> PollContent:
    return (
        m.status,
        m.yes_bid,
        m.yes_ask,
        m.yes_bid_size,
        m.yes_ask_size,
        m.last_price,
        m.volume,
        m.open_interest,
    )


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


def _ts(m: Message) -> tuple[int, int]:
    """(ts, recv) in microseconds: ts is the exchange time, or the receive time without one."""
    recv = m.ts_recv // 1000
    return (m.ts_exch * 1000 if m.ts_exch is not None else recv), recv


def _opt_ms(ms: int | None) -> int | None:
    return None if ms is None else ms * 1000


def _delta(b: BatchBuilder, m: BookDelta) -> None:
    # the bulk of the traffic: _ts inlined
    recv = m.ts_recv // 1000
    ts = m.ts_exch * 1000 if m.ts_exch is not None else recv
    b.rows["book_deltas"].append((m.conn, m.sid, m.xseq, m.ticker, m.side, m.price, m.delta, ts, recv))


def _deltas(b: BatchBuilder, msgs: list[BookDelta]) -> None:
    append = b.rows["book_deltas"].append
    for m in msgs:
        recv = m.ts_recv // 1000
        ts = m.ts_exch * 1000 if m.ts_exch is not None else recv
        append((m.conn, m.sid, m.xseq, m.ticker, m.side, m.price, m.delta, ts, recv))


def _snapshot(b: BatchBuilder, m: BookSnapshot) -> None:
    ts, recv = _ts(m)
    row = (
        m.ticker,
        recv,
        m.conn,
        m.sid,
        m.xseq,
        m.market_id,
        m.source,
        json_text(m.yes),
        json_text(m.no),
        ts,
    )
    b.rows["book_snapshots"].append(row)


def _ticker(b: BatchBuilder, m: Ticker) -> None:
    ts, recv = _ts(m)
    row = (
        m.ticker, ts, "ws", recv, m.market_id, None, m.price, m.yes_bid, m.yes_ask,
        m.yes_bid_size, m.yes_ask_size, m.last_trade_size, m.volume, m.open_interest,
        m.dollar_volume, m.dollar_open_interest, False, m.pub, m.epoch, m.seq,
    )  # fmt: skip
    b.rows["ticks"].append(row)


def _poll(b: BatchBuilder, m: PollSnapshot) -> None:
    content = poll_content(m)
    if b.polls.get(m.ticker) == content:
        b.unchanged_polls += 1
        return
    b.polls[m.ticker] = content
    ts, recv = _ts(m)
    row = (
        m.ticker, ts, "poll", recv, None, m.status, m.last_price, m.yes_bid, m.yes_ask,
        m.yes_bid_size, m.yes_ask_size, None, m.volume, m.open_interest, None, None, m.fallback,
        m.pub, m.epoch, m.seq,
    )  # fmt: skip
    b.rows["ticks"].append(row)


def _trade(b: BatchBuilder, m: Trade) -> None:
    ts, recv = _ts(m)
    row = (
        m.trade_id,
        m.ticker,
        m.yes_price,
        m.no_price,
        m.count,
        m.taker_side,
        m.is_block_trade,
        ts,
        recv,
    )
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
    row = (
        ticker, event_type, ts, recv, cols.get("event_ticker"), cols.get("open_ts"),
        cols.get("close_ts"), cols.get("result"), cols.get("determination_ts"),
        cols.get("settlement_value"), cols.get("settled_ts"), cols.get("is_deactivated"),
        cols.get("price_ranges"), cols.get("title"), cols.get("yes_sub_title"),
        cols.get("no_sub_title"), None if detail is None else json_text(detail),
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
    _lifecycle_row(b, m, m.ticker, m.event_type, **cols)
    # The market row learns whatever this event carries (creation: titles and times; ...).
    known = {
        k: v
        for k in ("event_ticker", "title", "yes_sub_title", "no_sub_title", "open_ts", "close_ts", "result")
        if (v := cols[k]) is not None
    }
    if cols["price_ranges"] is not None:
        known["price_ranges"] = cols["price_ranges"]
    b.upsert("markets", m.ticker, known, _ts(m)[0])


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
        },
        ts,
    )
    b.upsert("events", m.event_ticker, {"series_ticker": m.series_ticker}, ts)
    b.upsert("series", m.series_ticker, {"category": m.category} if m.category else {}, ts)


def _gap(b: BatchBuilder, m: Gap) -> None:
    ts, recv = _ts(m)
    row = (
        m.conn, m.sid, m.expected, m.status, m.received, json_text(m.tickers), m.reason, m.method,
        _opt_ms(m.detected_ms or None), _opt_ms(m.recovered_ms), ts, recv,
    )  # fmt: skip
    b.rows["gaps"].append(row)


def _signal(b: BatchBuilder, m: Signal) -> None:
    ts, recv = _ts(m)
    row = (
        m.strategy, m.ticker, m.side, ts, recv, m.price, m.size, m.fair_ppm, m.edge, m.fees,
        json_text(m.legs), m.detail,
    )  # fmt: skip
    b.rows["signals"].append(row)


def _worker_event(b: BatchBuilder, m: WorkerEvent) -> None:
    ts, recv = _ts(m)
    b.rows["worker_events"].append((m.worker, ts, m.event, recv, m.pid, m.exit_code, m.detail))


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
}

#: Mappers of a whole run of one kind, for the kinds that dominate traffic.
RUN_MAPPERS: dict[type[Any], Callable[[BatchBuilder, Any], None]] = {BookDelta: _deltas}

#: Kind tags the writer stores (every durable kind of the bus schema but UNSTORED_KINDS).
STORED_KINDS: frozenset[str] = frozenset(t.__struct_config__.tag for t in MAPPERS)

#: Durable kinds deliberately not stored yet (this account's fills and positions: no table).
#: The writer does not subscribe to them; met in a journal replay they are skipped and counted.
UNSTORED_KINDS: frozenset[str] = frozenset({"fill", "position"})
