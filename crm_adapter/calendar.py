"""The city's working calendar: which days are working days and which hours are office hours, in the city's
zone.

Days: Chinese public holidays and the adjusted working days (调休, e.g. a working Saturday before the Spring
Festival) come from the `chinesecalendar` package, which is updated once the State Council publishes a year's
schedule (version 1.11.0 covers 2004–2026). For a year it does not cover yet, the configuration's own
`extra_holidays` / `extra_workdays` lists are the source, on top of the plain rule "the office weekdays work".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar

from gateway.clock import utc

_WEEKDAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}


def _package_years() -> frozenset[int]:
    return frozenset(d.year for d in chinese_calendar.constants.holidays)


@dataclass(frozen=True)
class CalendarConfig:
    timezone: str = "Asia/Shanghai"
    weekdays: tuple[int, ...] = (0, 1, 2, 3, 4)
    periods: tuple[tuple[time, time], ...] = ((time(8, 30), time(12, 0)), (time(13, 30), time(17, 30)))
    use_chinesecalendar: bool = True
    extra_holidays: frozenset[date] = field(default_factory=frozenset)
    extra_workdays: frozenset[date] = field(default_factory=frozenset)

    @staticmethod
    def from_dict(raw: dict[str, object]) -> CalendarConfig:
        """Read the `calendar:` block of sla.yml."""
        office = raw.get("office_hours") or {}
        assert isinstance(office, dict)
        weekdays = tuple(
            _WEEKDAYS[str(d).lower()[:3]] for d in office.get("weekdays", ["mon", "tue", "wed", "thu", "fri"])
        )
        periods = tuple(
            (time.fromisoformat(str(a)), time.fromisoformat(str(b)))
            for a, b in office.get("periods", [["08:30", "12:00"], ["13:30", "17:30"]])
        )
        for start, end in periods:
            if not start < end:
                raise ValueError(f"office period {start}–{end} ends before it starts")
        if not periods:
            raise ValueError("office_hours.periods is empty")

        def dates(key: str) -> frozenset[date]:
            values = raw.get(key) or []
            assert isinstance(values, list)
            return frozenset(v if isinstance(v, date) else date.fromisoformat(str(v)) for v in values)

        return CalendarConfig(
            timezone=str(raw.get("timezone", "Asia/Shanghai")),
            weekdays=weekdays,
            periods=tuple(sorted(periods)),
            use_chinesecalendar=bool(raw.get("use_chinesecalendar", True)),
            extra_holidays=dates("extra_holidays"),
            extra_workdays=dates("extra_workdays"),
        )


class WorkingCalendar:
    """Working days and office hours; all public methods take and return timezone-aware datetimes."""

    def __init__(self, config: CalendarConfig | None = None) -> None:
        self.config = config or CalendarConfig()
        self.tz = ZoneInfo(self.config.timezone)
        self._package_years = _package_years() if self.config.use_chinesecalendar else frozenset()
        self._configured_years = frozenset(
            d.year for d in self.config.extra_holidays | self.config.extra_workdays
        )

    def covers(self, year: int) -> bool:
        """True when the holidays of `year` are known (from the package or from configuration)."""
        return year in self._package_years or year in self._configured_years

    def is_working_day(self, day: date) -> bool:
        if day in self.config.extra_workdays:
            return True
        if day in self.config.extra_holidays:
            return False
        if day.year in self._package_years:
            if day in chinese_calendar.constants.holidays:
                return False
            if day in chinese_calendar.constants.workdays:
                return True  # an adjusted working day (a Saturday or Sunday)
        return day.weekday() in self.config.weekdays

    def is_working_time(self, moment: datetime) -> bool:
        local = self._local(moment)
        if not self.is_working_day(local.date()):
            return False
        clock = local.time()
        return any(start <= clock < end for start, end in self.config.periods)

    def add_working_time(self, start: datetime, duration: timedelta) -> datetime:
        """The moment `duration` of office time after `start` has passed (time outside office hours is
        skipped)."""
        if duration < timedelta(0):
            raise ValueError("duration must not be negative")
        if duration == timedelta(0):
            return self._local(start).astimezone(UTC)
        local = self._local(start)
        remaining = duration
        day = local.date()
        for _ in range(3660):  # ten years of days: a misconfiguration fails loudly instead of looping forever
            if self.is_working_day(day):
                for p_start, p_end in self.config.periods:
                    begin = datetime.combine(day, p_start, self.tz)
                    end = datetime.combine(day, p_end, self.tz)
                    if end <= local:
                        continue
                    begin = max(begin, local)
                    available = end - begin
                    if remaining <= available:
                        return (begin + remaining).astimezone(UTC)
                    remaining -= available
            day += timedelta(days=1)
        raise ValueError("no working time found within ten years; check the calendar configuration")

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """Deadline of `days` working days: the close of office on the days-th working day after the start
        day.

        The start day does not count (a request filed on Monday at 10:00 with one working day is due on
        Tuesday at
        the close of office), which is how service commitments are usually counted.
        """
        if days < 1:
            raise ValueError("days must be at least 1")
        day = self._local(start).date()
        counted = 0
        for _ in range(3660):
            day += timedelta(days=1)
            if self.is_working_day(day):
                counted += 1
                if counted == days:
                    return datetime.combine(day, self.config.periods[-1][1], self.tz).astimezone(UTC)
        raise ValueError("no working day found within ten years; check the calendar configuration")

    def working_time_between(self, start: datetime, end: datetime) -> timedelta:
        """Office time between two moments (zero when end is before start)."""
        total = timedelta(0)
        a, b = self._local(start), self._local(end)
        day = a.date()
        while day <= b.date():
            if self.is_working_day(day):
                for p_start, p_end in self.config.periods:
                    lo = max(datetime.combine(day, p_start, self.tz), a)
                    hi = min(datetime.combine(day, p_end, self.tz), b)
                    if hi > lo:
                        total += hi - lo
            day += timedelta(days=1)
        return total

    def _local(self, moment: datetime) -> datetime:
        return utc(moment).astimezone(self.tz)
