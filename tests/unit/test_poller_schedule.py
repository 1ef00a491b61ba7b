"""Exchange status and schedule: when is a feed outage expected?"""

from __future__ import annotations

import datetime as dt

from services.poller.schedule import ExchangeClock, in_session
from shared.kalshi.rest_models import (
    DailySchedule,
    ExchangeStatus,
    MaintenanceWindow,
    Schedule,
    WeeklySchedule,
)

DAY = [DailySchedule("00:00", "23:59")]
THURSDAY = [DailySchedule("00:00", "03:00"), DailySchedule("05:00", "23:59")]


def kalshi_schedule(windows: list[MaintenanceWindow] | None = None) -> Schedule:
    week = WeeklySchedule(
        "2024-01-01T00:00:00Z", "2099-12-31T23:59:59Z", DAY, DAY, DAY, THURSDAY, DAY, DAY, DAY
    )
    return Schedule([week], windows or [])


def utc(year: int, month: int, day: int, hour: int, minute: int) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=dt.UTC)


def test_thursday_maintenance_hours_in_eastern_time() -> None:
    c = ExchangeClock()
    c.schedule = kalshi_schedule()
    # 2026-11-26 is a Thursday; 03:00-05:00 EST = 08:00-10:00 UTC.
    assert c.trading_hours(utc(2026, 11, 26, 7, 59)) is True
    assert c.trading_hours(utc(2026, 11, 26, 8, 0)) is False
    assert c.trading_hours(utc(2026, 11, 26, 9, 59)) is False
    assert c.trading_hours(utc(2026, 11, 26, 10, 0)) is True
    assert c.expected_outage(utc(2026, 11, 26, 9, 0)) and not c.expected_outage(utc(2026, 11, 26, 11, 0))
    # Summer: EDT, 03:00 ET = 07:00 UTC.
    assert c.trading_hours(utc(2026, 7, 2, 7, 30)) is False
    assert c.trading_hours(utc(2026, 7, 2, 23, 59)) is True  # 19:59 ET; 23:59 closes at midnight
    assert ExchangeClock().trading_hours(utc(2026, 7, 2, 7, 30)) is None  # nothing known yet


def test_maintenance_windows_and_inactive_exchange() -> None:
    c = ExchangeClock()
    c.schedule = kalshi_schedule([MaintenanceWindow("2026-11-21T12:00:00Z", "2026-11-21T13:00:00Z")])
    assert c.maintenance(utc(2026, 11, 21, 12, 30)) and not c.maintenance(utc(2026, 11, 21, 13, 0))
    assert c.expected_outage(utc(2026, 11, 21, 12, 30))
    c.status = ExchangeStatus(exchange_active=False, trading_active=False)
    assert c.maintenance(utc(2026, 11, 21, 15, 0))
    c.status = ExchangeStatus(exchange_active=True, trading_active=True)
    assert not c.expected_outage(utc(2026, 11, 21, 15, 0))


def test_sessions_across_midnight_and_bad_times() -> None:
    night = [DailySchedule("22:00", "02:00"), DailySchedule("bad", "04:00")]
    assert in_session(night, 23 * 60) and in_session(night, 60) and not in_session(night, 3 * 60)
