"""Exchange status and schedule: is an outage right now expected?

Kalshi publishes its trading hours (``standard_hours``: weekly sessions in Eastern
Time, e.g. Thursday closes 03:00-05:00 for maintenance) and one-off
``maintenance_windows``; ``/exchange/status`` says whether the exchange is active at
all. A WebSocket outage while the exchange is in maintenance, inactive, or outside its
trading hours is expected: counted under its own label, logged without alarm.
Pure: pass the time (aware UTC datetime).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.kalshi import parse
from shared.kalshi.rest_models import DailySchedule, ExchangeStatus, Schedule
from shared.log import get_logger
from shared.units import UnitError

_log = get_logger("poller.schedule")


def _eastern() -> dt.tzinfo:
    try:
        return ZoneInfo("America/New_York")
    except ZoneInfoNotFoundError:
        # No tz database on this host: standard time is off by an hour half the year.
        _log.warning("no tz database: Kalshi's Eastern Time schedule read as UTC-5")
        return dt.timezone(dt.timedelta(hours=-5))


ET = _eastern()


def _ms(text: str) -> int | None:
    try:
        return parse.rfc3339_ms(text)
    except UnitError:
        return None


def _minutes(hhmm: str) -> int | None:
    hh, _, mm = hhmm.partition(":")
    if not (hh.isdigit() and mm.isdigit()):
        return None
    return int(hh) * 60 + int(mm)


def in_session(sessions: list[DailySchedule], minute: int) -> bool:
    """``minute`` of the day (ET) falls in one of the sessions; "23:59" closes at midnight."""
    for s in sessions:
        start, end = _minutes(s.open_time), _minutes(s.close_time)
        if start is None or end is None:
            continue
        if end == 23 * 60 + 59:
            end = 24 * 60
        if (start <= minute < end) if start <= end else (minute >= start or minute < end):
            return True
    return False


class ExchangeClock:
    def __init__(self) -> None:
        self.status: ExchangeStatus | None = None
        self.schedule: Schedule | None = None

    def maintenance(self, now: dt.datetime) -> bool:
        """Inside a scheduled maintenance window, or the exchange says it is not active."""
        if self.status is not None and not self.status.exchange_active:
            return True
        if self.schedule is None:
            return False
        now_ms = int(now.timestamp() * 1000)
        for w in self.schedule.maintenance_windows:
            start, end = _ms(w.start_datetime), _ms(w.end_datetime)
            if start is not None and end is not None and start <= now_ms < end:
                return True
        return False

    def trading_hours(self, now: dt.datetime) -> bool | None:
        """Within the standard trading hours (None: no schedule in force for today)."""
        if self.schedule is None:
            return None
        now_ms = int(now.timestamp() * 1000)
        local = now.astimezone(ET)
        minute = local.hour * 60 + local.minute
        for week in self.schedule.standard_hours:
            start, end = _ms(week.start_time), _ms(week.end_time)
            if start is not None and end is not None and start <= now_ms < end:
                return in_session(week.day(local.weekday()), minute)
        return None

    def expected_outage(self, now: dt.datetime) -> bool:
        return self.maintenance(now) or self.trading_hours(now) is False
