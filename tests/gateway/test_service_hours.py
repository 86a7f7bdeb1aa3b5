"""Service hours: the weekly calendar in the centre's time zone, Chinese public holidays and adjusted working days."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from gateway.calendar import InvalidCalendar as InvalidServiceHours
from gateway.calendar import WorkingCalendar

SHANGHAI = ZoneInfo("Asia/Shanghai")
HOURS = WorkingCalendar.parse("mon-fri 08:30-17:30; sat 09:00-12:00", "Asia/Shanghai")


def local(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=SHANGHAI)  # type: ignore[misc]


def test_weekly_calendar_in_the_centres_time_zone() -> None:
    assert HOURS.is_open(local(2026, 11, 23, 8, 30))  # Monday
    assert not HOURS.is_open(local(2026, 11, 23, 17, 30))
    assert HOURS.is_open(local(2026, 11, 28, 11, 59))  # Saturday morning
    assert not HOURS.is_open(local(2026, 11, 29, 10, 0))  # Sunday
    assert HOURS.is_open(datetime(2026, 11, 23, 1, 0, tzinfo=UTC))  # 09:00 in Binjiang
    assert HOURS.next_open(local(2026, 11, 28, 12, 0)) == local(2026, 11, 30, 8, 30)


def test_public_holidays_close_and_adjusted_working_days_open() -> None:
    assert not HOURS.is_open(local(2026, 10, 1, 10, 0))  # National Day, a Thursday
    assert not HOURS.is_open(local(2026, 10, 3, 10, 0))  # a Saturday inside the holiday
    assert HOURS.next_open(local(2026, 10, 1, 10, 0)) == local(2026, 10, 8, 8, 30)
    assert HOURS.is_open(local(2026, 9, 20, 15, 0))  # a Sunday worked (调休): Monday's hours
    assert not WorkingCalendar.parse("mon-fri 08:30-17:30", use_holidays=False).is_open(local(2026, 9, 20, 15, 0))


def test_always_open() -> None:
    always = WorkingCalendar.parse("24x7")
    assert always.is_open(local(2026, 10, 1, 3, 0)) and always.next_open(local(2026, 10, 1, 3, 0)) is None


@pytest.mark.parametrize("text", ["", "mon-fri", "mon-fri 9-17", "fri-mon 08:00-12:00", "xyz 08:00-12:00",
                                  "mon 18:00-09:00", "mon 25:00-26:00"])
def test_bad_settings_are_refused_with_a_reason(text: str) -> None:
    with pytest.raises(InvalidServiceHours):
        WorkingCalendar.parse(text)
