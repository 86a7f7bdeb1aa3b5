"""The service centre's opening hours: a weekly calendar in its time zone, minus Chinese public holidays.

`SERVICE_HOURS` is `24x7` or a list of day ranges with time ranges, e.g. `mon-fri 08:30-17:30; sat 09:00-12:00`.
Public holidays close the centre and adjusted working days (调休, a weekend worked) open it with Monday's hours, both
from the `chinesecalendar` package; outside its years the weekly calendar alone applies.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import chinese_calendar

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RULE = re.compile(r"^\s*([a-z]{3})(?:\s*-\s*([a-z]{3}))?\s+(.+)$")
_SPAN = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")


class InvalidServiceHours(ValueError):
    """SERVICE_HOURS could not be read; the message says which part."""


@dataclass(frozen=True)
class ServiceHours:
    always: bool
    zone: ZoneInfo
    # weekday (0 = Monday) → opening spans as (start, end) local times
    week: dict[int, tuple[tuple[dt.time, dt.time], ...]] = field(default_factory=dict)
    use_holidays: bool = True

    @classmethod
    def parse(cls, text: str, timezone: str = "Asia/Shanghai", use_holidays: bool = True) -> ServiceHours:
        zone = ZoneInfo(timezone)
        cleaned = text.strip().lower()
        if cleaned in ("24x7", "24/7", "always"):
            return cls(True, zone)
        week: dict[int, list[tuple[dt.time, dt.time]]] = {}
        for part in filter(None, (p.strip() for p in cleaned.split(";"))):
            match = _RULE.match(part)
            if not match or match.group(1) not in DAYS or (match.group(2) and match.group(2) not in DAYS):
                raise InvalidServiceHours(f"{part!r}: expected e.g. 'mon-fri 08:30-17:30'")
            first = DAYS.index(match.group(1))
            last = DAYS.index(match.group(2)) if match.group(2) else first
            if last < first:
                raise InvalidServiceHours(f"{part!r}: the day range runs backwards")
            for span_text in match.group(3).split(","):
                span = _SPAN.match(span_text.strip())
                if not span:
                    raise InvalidServiceHours(f"{span_text.strip()!r}: expected HH:MM-HH:MM")
                h1, m1, h2, m2 = (int(g) for g in span.groups())
                if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h1, m1) >= (h2, m2):
                    raise InvalidServiceHours(f"{span_text.strip()!r}: not a time range within a day")
                end = dt.time(23, 59, 59) if h2 == 24 else dt.time(h2, m2)
                for day in range(first, last + 1):
                    week.setdefault(day, []).append((dt.time(h1, m1), end))
        if not week:
            raise InvalidServiceHours("no opening hours given (use '24x7' for always open)")
        return cls(False, zone, {d: tuple(sorted(s)) for d, s in week.items()}, use_holidays)

    def spans_on(self, day: dt.date) -> tuple[tuple[dt.time, dt.time], ...]:
        """Opening spans of one local date, holidays and adjusted working days applied."""
        spans = self.week.get(day.weekday(), ())
        if not self.use_holidays:
            return spans
        try:
            holiday, name = chinese_calendar.get_holiday_detail(day)
        except NotImplementedError:  # a year the package does not know: the weekly calendar alone
            return spans
        if holiday and name is not None:
            return ()  # a public holiday (a plain weekend has no name and keeps its weekly hours)
        if not holiday and day.weekday() >= 5:
            return self.week.get(0, spans)  # an adjusted working day (调休) keeps a Monday's hours
        return spans

    def is_open(self, moment: dt.datetime) -> bool:
        if self.always:
            return True
        local = moment.astimezone(self.zone)
        return any(start <= local.time() < end for start, end in self.spans_on(local.date()))

    def next_open(self, moment: dt.datetime) -> dt.datetime | None:
        """When people are next at their desks (local time), or None when always open / never within 60 days."""
        if self.always:
            return None
        local = moment.astimezone(self.zone)
        for offset in range(61):
            day = local.date() + dt.timedelta(days=offset)
            for start, _end in self.spans_on(day):
                opening = dt.datetime.combine(day, start, self.zone)
                if opening > local:
                    return opening
        return None
