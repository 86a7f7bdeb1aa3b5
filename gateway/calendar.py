"""Working time on the Chinese calendar, in one time zone: which days are worked, the opening spans of each day, and
the arithmetic on them. The work orders count their deadlines on it (sla.yml's `calendar:` block) and the handoff
knows from it when people answer (the SERVICE_HOURS setting); it imports no feature package.

Days: Chinese public holidays close, and adjusted working days (调休, a weekend day worked) open; both come from the
`chinesecalendar` package, which is updated once the State Council publishes a year's schedule (1.11.0 covers
2004–2026). The calendar's own `extra_holidays` / `extra_workdays` come first (for a year the package does not cover
yet). On any other day, and in years neither knows, the weekly spans alone apply.

Spans: the local opening spans per weekday. A day worked in exchange (an adjusted or extra working day) opens with
`exchange_spans` when they are set (sla.yml: the office periods of every working day), else with Monday's spans, or
its own weekday's when Monday is closed. `24x7` is open at every moment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar

from gateway.clock import utc

Span = tuple[time, time]  # local start and end; the end is not inside

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
OFFICE_PERIODS: tuple[Span, ...] = ((time(8, 30), time(12, 0)), (time(13, 30), time(17, 30)))
_WHOLE_DAY: tuple[Span, ...] = ((time.min, time.max),)
_PACKAGE_YEARS = frozenset(d.year for d in chinese_calendar.constants.holidays)
_SEARCH_DAYS = 3660  # ten years: a calendar without working time fails loudly instead of looping forever
_RULE = re.compile(r"^\s*([a-z]{3})(?:\s*-\s*([a-z]{3}))?\s+(.+)$")
_SPAN = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")


class InvalidCalendar(ValueError):
    """A calendar setting (SERVICE_HOURS, sla.yml's `calendar:`) could not be read; the message says which part."""


def _office_week() -> dict[int, tuple[Span, ...]]:
    return {day: OFFICE_PERIODS for day in range(5)}


@dataclass(frozen=True)
class CalendarConfig:
    """What a calendar is made of; the default is an office: Monday to Friday 08:30–12:00 and 13:30–17:30."""

    timezone: str = "Asia/Shanghai"
    week: Mapping[int, tuple[Span, ...]] = field(default_factory=_office_week)  # weekday (0 = Monday) → spans
    always: bool = False  # 24x7
    use_holidays: bool = True  # the chinesecalendar package's holidays and adjusted working days apply
    extra_holidays: frozenset[date] = frozenset()
    extra_workdays: frozenset[date] = frozenset()
    exchange_spans: tuple[Span, ...] | None = None  # spans of a day worked in exchange (see the module docstring)

    @staticmethod
    def from_dict(raw: Mapping[str, object]) -> CalendarConfig:
        """From sla.yml's `calendar:` block: office weekdays and periods (the same periods every working day),
        `use_chinesecalendar`, and the extra holidays and working days."""
        office = raw.get("office_hours") or {}
        assert isinstance(office, dict)
        names = office.get("weekdays", ["mon", "tue", "wed", "thu", "fri"])
        unknown = [d for d in names if str(d).lower()[:3] not in DAYS]
        if unknown:
            raise InvalidCalendar(f"office_hours.weekdays: unknown days {unknown}")
        periods = tuple(
            (time.fromisoformat(str(a)), time.fromisoformat(str(b)))
            for a, b in office.get("periods", [["08:30", "12:00"], ["13:30", "17:30"]])
        )
        for start, end in periods:
            if not start < end:
                raise InvalidCalendar(f"office period {start}–{end} ends before it starts")
        if not periods:
            raise InvalidCalendar("office_hours.periods is empty")
        periods = tuple(sorted(periods))

        def dates(key: str) -> frozenset[date]:
            values = raw.get(key) or []
            assert isinstance(values, list)
            return frozenset(v if isinstance(v, date) else date.fromisoformat(str(v)) for v in values)

        return CalendarConfig(
            timezone=str(raw.get("timezone", "Asia/Shanghai")),
            week={DAYS.index(str(d).lower()[:3]): periods for d in names},
            use_holidays=bool(raw.get("use_chinesecalendar", True)),
            extra_holidays=dates("extra_holidays"),
            extra_workdays=dates("extra_workdays"),
            exchange_spans=periods,
        )

    @staticmethod
    def from_service_hours(text: str, timezone: str = "Asia/Shanghai", use_holidays: bool = True) -> CalendarConfig:
        """From SERVICE_HOURS: `24x7`, or day ranges with time ranges, e.g. `mon-fri 08:30-17:30; sat 09:00-12:00`."""
        cleaned = text.strip().lower()
        if cleaned in ("24x7", "24/7", "always"):
            return CalendarConfig(timezone, {}, always=True)
        week: dict[int, list[Span]] = {}
        for part in filter(None, (p.strip() for p in cleaned.split(";"))):
            match = _RULE.match(part)
            if not match or match.group(1) not in DAYS or (match.group(2) and match.group(2) not in DAYS):
                raise InvalidCalendar(f"{part!r}: expected e.g. 'mon-fri 08:30-17:30'")
            first = DAYS.index(match.group(1))
            last = DAYS.index(match.group(2)) if match.group(2) else first
            if last < first:
                raise InvalidCalendar(f"{part!r}: the day range runs backwards")
            for span_text in match.group(3).split(","):
                span = _SPAN.match(span_text.strip())
                if not span:
                    raise InvalidCalendar(f"{span_text.strip()!r}: expected HH:MM-HH:MM")
                h1, m1, h2, m2 = (int(g) for g in span.groups())
                if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h1, m1) >= (h2, m2):
                    raise InvalidCalendar(f"{span_text.strip()!r}: not a time range within a day")
                end = time(23, 59, 59) if h2 == 24 else time(h2, m2)
                for day in range(first, last + 1):
                    week.setdefault(day, []).append((time(h1, m1), end))
        if not week:
            raise InvalidCalendar("no opening hours given (use '24x7' for always open)")
        return CalendarConfig(timezone, {d: tuple(sorted(s)) for d, s in week.items()}, use_holidays=use_holidays)


class WorkingCalendar:
    """Working days and opening spans; every method takes and returns timezone-aware datetimes (naive ones are
    taken as UTC)."""

    def __init__(self, config: CalendarConfig | None = None) -> None:
        self.config = config or CalendarConfig()
        self.zone = ZoneInfo(self.config.timezone)

    @classmethod
    def parse(cls, text: str, timezone: str = "Asia/Shanghai", use_holidays: bool = True) -> WorkingCalendar:
        """The calendar of SERVICE_HOURS (see `CalendarConfig.from_service_hours`)."""
        return cls(CalendarConfig.from_service_hours(text, timezone, use_holidays))

    # ---- days ----------------------------------------------------------------------------------------------------

    def covers(self, year: int) -> bool:
        """True when the holidays of `year` are known (from the package or from the extra lists)."""
        if self.config.use_holidays and year in _PACKAGE_YEARS:
            return True
        return any(d.year == year for d in self.config.extra_holidays | self.config.extra_workdays)

    def spans_on(self, day: date) -> tuple[Span, ...]:
        """The opening spans of one local date, holidays and days worked in exchange applied."""
        if self.config.always:
            return _WHOLE_DAY
        own = self.config.week.get(day.weekday(), ())
        if day in self.config.extra_workdays:
            return self._exchange(own)
        if day in self.config.extra_holidays:
            return ()
        if self.config.use_holidays and day.year in _PACKAGE_YEARS:
            if day in chinese_calendar.constants.holidays:
                return ()  # a public holiday (a plain weekend is in neither list and keeps its weekly spans)
            if day in chinese_calendar.constants.workdays:
                return self._exchange(own)  # an adjusted working day (a Saturday or Sunday)
        return own

    def is_working_day(self, day: date) -> bool:
        return bool(self.spans_on(day))

    # ---- moments -------------------------------------------------------------------------------------------------

    def is_open(self, moment: datetime) -> bool:
        if self.config.always:
            return True
        local = self._local(moment)
        return any(start <= local.time() < end for start, end in self.spans_on(local.date()))

    def next_open(self, moment: datetime) -> datetime | None:
        """When people are next at their desks (local time), or None when always open / never within 60 days."""
        if self.config.always:
            return None
        local = self._local(moment)
        for offset in range(61):
            day = local.date() + timedelta(days=offset)
            for start, _end in self.spans_on(day):
                opening = datetime.combine(day, start, self.zone)
                if opening > local:
                    return opening
        return None

    # ---- working-time arithmetic (deadlines) ---------------------------------------------------------------------

    def add_working_time(self, start: datetime, duration: timedelta) -> datetime:
        """The moment `duration` of working time after `start` has passed (time outside the spans is skipped)."""
        if duration < timedelta(0):
            raise ValueError("duration must not be negative")
        if duration == timedelta(0) or self.config.always:
            return utc(start) + duration
        local = self._local(start)
        remaining = duration
        day = local.date()
        for _ in range(_SEARCH_DAYS):
            for span_start, span_end in self.spans_on(day):
                begin = datetime.combine(day, span_start, self.zone)
                end = datetime.combine(day, span_end, self.zone)
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
        """Deadline of `days` working days: the end of the last span of the days-th working day after the start day.

        The start day does not count (a request filed on Monday at 10:00 with one working day is due on Tuesday at
        the close of office), which is how service commitments are usually counted.
        """
        if days < 1:
            raise ValueError("days must be at least 1")
        day = self._local(start).date()
        counted = 0
        for _ in range(_SEARCH_DAYS):
            day += timedelta(days=1)
            spans = self.spans_on(day)
            if spans:
                counted += 1
                if counted == days:
                    return datetime.combine(day, spans[-1][1], self.zone).astimezone(UTC)
        raise ValueError("no working day found within ten years; check the calendar configuration")

    def working_time_between(self, start: datetime, end: datetime) -> timedelta:
        """Working time between two moments (zero when end is before start)."""
        if self.config.always:
            return max(utc(end) - utc(start), timedelta(0))
        total = timedelta(0)
        a, b = self._local(start), self._local(end)
        day = a.date()
        while day <= b.date():
            for span_start, span_end in self.spans_on(day):
                lo = max(datetime.combine(day, span_start, self.zone), a)
                hi = min(datetime.combine(day, span_end, self.zone), b)
                if hi > lo:
                    total += hi - lo
            day += timedelta(days=1)
        return total

    def _exchange(self, own: tuple[Span, ...]) -> tuple[Span, ...]:
        if self.config.exchange_spans is not None:
            return self.config.exchange_spans
        return self.config.week.get(0, own)

    def _local(self, moment: datetime) -> datetime:
        return utc(moment).astimezone(self.zone)
