"""The working-day clock on Binjiang's calendar: office hours, the 2026 Spring Festival (15–23 Feb, with the
adjusted working Saturdays 14 Feb and 28 Feb from chinesecalendar), and years the package does not cover."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from crm_adapter.sla import load_sla, parse_sla
from gateway.calendar import CalendarConfig, WorkingCalendar

SH = ZoneInfo("Asia/Shanghai")
CAL = WorkingCalendar()


def at(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=SH)


def test_the_package_knows_2026_spring_festival() -> None:
    assert not CAL.is_working_day(date(2026, 2, 16))  # Monday, holiday
    assert not CAL.is_working_day(date(2026, 2, 23))  # Monday, last day of the holiday
    assert CAL.is_working_day(date(2026, 2, 14))  # Saturday, adjusted working day
    assert CAL.is_working_day(date(2026, 2, 28))  # Saturday, adjusted working day
    assert not CAL.is_working_day(date(2026, 2, 21))  # Saturday inside the holiday
    assert CAL.is_working_day(date(2026, 2, 24))  # Tuesday, back to work


def test_office_hours() -> None:
    assert CAL.is_open(at(2026, 11, 23, 8, 30))  # Monday opening
    assert not CAL.is_open(at(2026, 11, 23, 8, 29))
    assert not CAL.is_open(at(2026, 11, 23, 12, 30))  # lunch
    assert CAL.is_open(at(2026, 11, 23, 17, 29))
    assert not CAL.is_open(at(2026, 11, 23, 17, 30))
    assert not CAL.is_open(at(2026, 11, 28, 10, 0))  # ordinary Saturday
    assert CAL.is_open(at(2026, 2, 14, 10, 0))  # adjusted working Saturday
    assert CAL.is_open(datetime(2026, 11, 23, 2, 0, tzinfo=UTC))  # 10:00 in Shanghai


def test_add_working_time_within_a_day_and_over_lunch_and_night() -> None:
    assert CAL.add_working_time(at(2026, 11, 23, 9, 0), timedelta(hours=2)) == at(2026, 11, 23, 11, 0)
    assert CAL.add_working_time(at(2026, 11, 23, 11, 0), timedelta(hours=2)) == at(2026, 11, 23, 14, 30)
    assert CAL.add_working_time(at(2026, 11, 23, 17, 0), timedelta(hours=1)) == at(2026, 11, 24, 9, 0)
    assert CAL.add_working_time(at(2026, 11, 23, 20, 0), timedelta(hours=1)) == at(2026, 11, 24, 9, 30)
    assert CAL.add_working_time(at(2026, 11, 23, 8, 30), timedelta(hours=7.5)) == at(2026, 11, 23, 17, 30)
    # Friday afternoon → Monday
    assert CAL.add_working_time(at(2026, 11, 27, 16, 30), timedelta(hours=2)) == at(2026, 11, 30, 9, 30)


def test_add_working_time_across_the_spring_festival() -> None:
    # Friday 13 Feb 16:30 + 4 h: 1 h on Friday, 3 h on the adjusted working Saturday 14 Feb (08:30–12:00 → 11:30).
    assert CAL.add_working_time(at(2026, 2, 13, 16, 30), timedelta(hours=4)) == at(2026, 2, 14, 11, 30)
    # Saturday 14 Feb 16:00 + 2 h: 1.5 h that day, then nothing until Tuesday 24 Feb 09:00.
    assert CAL.add_working_time(at(2026, 2, 14, 16, 0), timedelta(hours=2)) == at(2026, 2, 24, 9, 0)


def test_add_working_days_across_the_spring_festival_and_the_adjusted_saturday() -> None:
    # Filed Thursday 12 Feb: 1 → Fri 13, 2 → Sat 14 (worked), 3 → Tue 24 (15–23 off).
    assert CAL.add_working_days(at(2026, 2, 12, 10, 0), 1) == at(2026, 2, 13, 17, 30)
    assert CAL.add_working_days(at(2026, 2, 12, 10, 0), 2) == at(2026, 2, 14, 17, 30)
    assert CAL.add_working_days(at(2026, 2, 12, 10, 0), 3) == at(2026, 2, 24, 17, 30)
    # Filed on Friday 27 Feb: 1 working day → the adjusted working Saturday 28 Feb.
    assert CAL.add_working_days(at(2026, 2, 27, 15, 0), 1) == at(2026, 2, 28, 17, 30)
    # Filed during the holiday: the first working day after it.
    assert CAL.add_working_days(at(2026, 2, 18, 10, 0), 1) == at(2026, 2, 24, 17, 30)


def test_working_time_between() -> None:
    assert CAL.working_time_between(at(2026, 2, 13, 17, 0), at(2026, 2, 24, 9, 0)) == timedelta(
        hours=8.5
    )  # 0.5 Fri + 7.5 adjusted Sat + 0.5 Tue


def test_years_beyond_the_package_use_the_configured_lists() -> None:
    assert not CAL.covers(2027)
    assert CAL.is_working_day(date(2027, 1, 1))  # a Friday: unknown holiday → plain weekday rule
    configured = WorkingCalendar(
        CalendarConfig(
            extra_holidays=frozenset({date(2027, 1, 1)}),
            extra_workdays=frozenset({date(2027, 1, 2)}),
        )
    )
    assert configured.covers(2027)
    assert not configured.is_working_day(date(2027, 1, 1))
    assert configured.is_working_day(date(2027, 1, 2))  # a Saturday made a working day


def test_sla_yml_deadlines() -> None:
    sla = load_sla()
    filed = at(2026, 11, 23, 10, 0)  # Monday
    assert sla.due_at("report", "normal", filed) == at(2026, 11, 26, 17, 30)
    assert sla.due_at("complaint", "urgent", filed) == at(
        2026, 11, 24, 10, 30
    )  # 8 working hours: 6 on Monday
    assert sla.due_at("report", "urgent", filed) == at(2026, 11, 23, 12, 0)  # 2 h around the clock
    assert sla.reminder_threshold(filed) == at(2026, 11, 23, 15, 30)  # 4 working hours


def test_sla_config_errors_and_extra_dates() -> None:
    with pytest.raises(ValueError, match="unit"):
        parse_sla({"default": {"weeks": 1}})
    with pytest.raises(ValueError, match="category"):
        parse_sla({"deadlines": {"gossip": {"normal": {"working_days": 1}}}})
    sla = parse_sla({"calendar": {"extra_holidays": [date(2027, 1, 1), "2027-01-04"]}})
    assert sla.calendar.covers(2027) and not sla.calendar.is_working_day(date(2027, 1, 4))
