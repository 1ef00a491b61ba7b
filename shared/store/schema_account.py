"""This account's own activity (private channels, with credentials): empty on a public feed.
Part of the schema (:mod:`schema`); the same conventions."""

from __future__ import annotations

from sqlalchemy import Index, PrimaryKeyConstraint, Table

from shared.store.columns import bool_col, int_col, metadata, text_col, ts_col

fills = Table(
    "fills",
    metadata,
    # This account's fills (private ``fill`` channel). Kalshi names a fill by the trade and the
    # order: both sides of one trade can be this account's (two orders), each its own fill.
    text_col("trade_id"),
    text_col("order_id"),
    text_col("ticker"),
    bool_col("is_taker"),
    text_col("side"),
    int_col("yes_price"),
    int_col("count"),
    int_col("fee"),
    text_col("action"),
    int_col("post_position"),
    text_col("client_order_id", True),
    ts_col("ts"),
    ts_col("recv"),
    int_col("subaccount", True),  # 0006: the subaccount whose order filled
    PrimaryKeyConstraint("trade_id", "order_id"),
    Index("ix_fills_ticker_ts", "ticker", "ts"),
)

positions = Table(
    "positions",
    metadata,
    # Snapshots of this account's position in one market (private ``market_positions``
    # channel). Kalshi's frame carries no time of its own, so ts is usually the receive time,
    # shared by every frame of one read: the bus identity (as in ticks) keeps two updates of
    # one market in one read apart, and a journal replay (same identity) stores them once.
    text_col("ticker"),
    ts_col("ts"),
    ts_col("recv"),
    int_col("position"),
    int_col("position_cost"),
    int_col("realized_pnl"),
    int_col("fees_paid"),
    int_col("volume"),
    text_col("pub"),
    int_col("epoch"),
    int_col("seq"),
    PrimaryKeyConstraint("ticker", "ts", "pub", "epoch", "seq"),
)

orders = Table(
    "orders",
    metadata,
    # This account's orders, one row per state an order was in (private ``user_orders``). Two
    # updates are the same row when they say the same at the same time: a replay, or a
    # reconnecting connector publishing it again, stores it once.
    text_col("order_id"),
    ts_col("ts"),
    text_col("status"),
    int_col("yes_price"),
    int_col("fill_count"),
    int_col("remaining_count"),
    ts_col("recv"),
    text_col("ticker"),
    text_col("side"),
    int_col("initial_count"),
    int_col("taker_fill_cost"),
    int_col("maker_fill_cost"),
    int_col("taker_fees", True),
    int_col("maker_fees", True),
    text_col("client_order_id", True),
    text_col("order_group_id", True),
    text_col("self_trade_prevention_type", True),
    ts_col("created_ts", True),
    ts_col("expiration_ts", True),
    text_col("last_update_reason", True),
    int_col("subaccount", True),
    PrimaryKeyConstraint("order_id", "ts", "status", "yes_price", "fill_count", "remaining_count"),
    Index("ix_orders_ticker_ts", "ticker", "ts"),
)

order_groups = Table(
    "order_groups",
    metadata,
    # Events of this account's order groups (private ``order_group_updates``); ts is the
    # matching engine's (required by the spec).
    text_col("order_group_id"),
    text_col("event_type"),
    ts_col("ts"),
    ts_col("recv"),
    int_col("contracts_limit", True),
    PrimaryKeyConstraint("order_group_id", "event_type", "ts"),
)
