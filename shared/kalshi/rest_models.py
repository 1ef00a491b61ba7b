"""Kalshi REST v2 response models (msgspec Structs).

They keep Kalshi's field names and decimal strings; :mod:`shared.kalshi.parse`
converts them to exact units. Unknown fields are ignored.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from shared.kalshi.ws import PriceRangeWire, Side


class Market(msgspec.Struct, frozen=True):
    ticker: str
    event_ticker: str
    market_type: str = "binary"
    title: str = ""
    yes_sub_title: str = ""
    no_sub_title: str = ""
    status: str = ""
    open_time: str | None = None
    close_time: str | None = None
    updated_time: str | None = None
    expected_expiration_time: str | None = None
    latest_expiration_time: str | None = None
    result: str = ""
    price_level_structure: str = ""
    price_ranges: list[PriceRangeWire] = []
    yes_bid_dollars: str = ""
    yes_ask_dollars: str = ""
    yes_bid_size_fp: str = ""
    yes_ask_size_fp: str = ""
    last_price_dollars: str = ""
    volume_fp: str = "0.00"
    open_interest_fp: str = "0.00"
    mve_collection_ticker: str = ""


class MarketsPage(msgspec.Struct, frozen=True):
    markets: list[Market] = []
    cursor: str | None = None


class MarketResponse(msgspec.Struct, frozen=True):
    market: Market


class Event(msgspec.Struct, frozen=True):
    event_ticker: str
    series_ticker: str = ""
    title: str = ""
    sub_title: str = ""
    #: Deprecated on events but still sent; the series carries the authoritative one.
    category: str = ""
    mutually_exclusive: bool = False
    markets: list[Market] | None = None
    #: Event-level fee overrides (absent or null: the series' own fee applies).
    fee_type_override: str | None = None
    fee_multiplier_override: msgspec.Raw = msgspec.Raw(b"null")


class EventsPage(msgspec.Struct, frozen=True):
    events: list[Event] = []
    cursor: str | None = None


class EventResponse(msgspec.Struct, frozen=True):
    event: Event
    markets: list[Market] | None = None


class Series(msgspec.Struct, frozen=True):
    ticker: str
    title: str = ""
    category: str = ""
    tags: list[str] | None = None
    fee_type: str = ""
    #: A JSON number: kept raw so it is parsed exactly (see parse.fee_multiplier_ppm).
    fee_multiplier: msgspec.Raw = msgspec.Raw(b"null")


class SeriesResponse(msgspec.Struct, frozen=True):
    series: Series


class SeriesList(msgspec.Struct, frozen=True):
    series: list[Series] | None = None


PriceLevel = tuple[str, str]  # (price in dollars, count) as decimal strings


class Orderbook(msgspec.Struct, frozen=True):
    """Bids only, ascending by price (best last); NO levels in NO prices. ``None`` = empty side."""

    yes_dollars: list[PriceLevel] | None = None
    no_dollars: list[PriceLevel] | None = None


class OrderbookResponse(msgspec.Struct, frozen=True):
    orderbook_fp: Orderbook


class MarketOrderbook(msgspec.Struct, frozen=True):
    ticker: str
    orderbook_fp: Orderbook


class OrderbooksResponse(msgspec.Struct, frozen=True):
    orderbooks: list[MarketOrderbook] = []


class RestTrade(msgspec.Struct, frozen=True):
    """A trade as ``GET /markets/trades`` lists it.

    3.31 requires ``taker_outcome_side``/``taker_book_side`` and deprecates ``taker_side``; 3.13
    bodies have only ``taker_side``. All three are optional here so both decode (Kalshi rolls
    changes out over weeks); :attr:`outcome_side` reads whichever is present.
    """

    trade_id: str
    ticker: str
    count_fp: str
    yes_price_dollars: str
    no_price_dollars: str
    created_time: str
    taker_outcome_side: Side | None = None
    taker_book_side: Literal["bid", "ask"] | None = None
    taker_side: Side | None = None
    is_block_trade: bool = False

    @property
    def outcome_side(self) -> Side | None:
        """The side the taker is positioned for; ``None`` only if the body names none."""
        if self.taker_outcome_side is not None:
            return self.taker_outcome_side
        if self.taker_side is not None:
            return self.taker_side
        if self.taker_book_side is not None:
            return "yes" if self.taker_book_side == "bid" else "no"  # bid = buy YES (BookSide)
        return None


class TradesPage(msgspec.Struct, frozen=True):
    trades: list[RestTrade] = []
    cursor: str | None = None


class ExchangeStatus(msgspec.Struct, frozen=True):
    exchange_active: bool
    trading_active: bool
    exchange_estimated_resume_time: str | None = None


class DailySchedule(msgspec.Struct, frozen=True):
    open_time: str  # "HH:MM", Eastern Time
    close_time: str


class WeeklySchedule(msgspec.Struct, frozen=True):
    start_time: str
    end_time: str
    monday: list[DailySchedule] = []
    tuesday: list[DailySchedule] = []
    wednesday: list[DailySchedule] = []
    thursday: list[DailySchedule] = []
    friday: list[DailySchedule] = []
    saturday: list[DailySchedule] = []
    sunday: list[DailySchedule] = []

    def day(self, weekday: int) -> list[DailySchedule]:
        """Sessions of ``weekday`` (0 = Monday, as ``datetime.weekday()``)."""
        days = (self.monday, self.tuesday, self.wednesday, self.thursday, self.friday, self.saturday)
        return days[weekday] if weekday < 6 else self.sunday


class MaintenanceWindow(msgspec.Struct, frozen=True):
    start_datetime: str
    end_datetime: str


class Schedule(msgspec.Struct, frozen=True):
    standard_hours: list[WeeklySchedule] = []
    maintenance_windows: list[MaintenanceWindow] = []


class ScheduleResponse(msgspec.Struct, frozen=True):
    schedule: Schedule
