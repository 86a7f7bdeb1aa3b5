"""Service commitments: the deadline of an order by category and priority, and the reminder window before it.

Read from `sla.yml` (path from the CRM_SLA_PATH setting). A commitment is counted in `working_days`, in
`working_hours` (office time on the city's calendar) or, for emergencies that do not wait for office hours, in plain
`hours`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from crm_adapter.workflow import Category, Priority
from gateway.calendar import CalendarConfig, WorkingCalendar

DEFAULT_SLA_PATH = Path(__file__).resolve().parent / "sla.yml"


@dataclass(frozen=True)
class Commitment:
    amount: float
    unit: str  # working_days, working_hours, hours

    @staticmethod
    def parse(raw: Any, where: str) -> Commitment:
        if not isinstance(raw, dict) or len(raw) != 1:
            raise ValueError(f"{where}: expected one of working_days / working_hours / hours, got {raw!r}")
        ((unit, amount),) = raw.items()
        if unit not in ("working_days", "working_hours", "hours"):
            raise ValueError(f"{where}: unknown unit {unit!r}")
        if not isinstance(amount, int | float) or amount <= 0:
            raise ValueError(f"{where}: the amount must be a positive number")
        if unit == "working_days" and int(amount) != amount:
            raise ValueError(f"{where}: working_days must be whole")
        return Commitment(float(amount), unit)

    def deadline(self, calendar: WorkingCalendar, start: datetime) -> datetime:
        if self.unit == "working_days":
            return calendar.add_working_days(start, int(self.amount))
        if self.unit == "working_hours":
            return calendar.add_working_time(start, timedelta(hours=self.amount))
        return start + timedelta(hours=self.amount)


@dataclass(frozen=True)
class SlaPolicy:
    """Deadlines per (category, priority), the reminder window and the calendar they are counted on."""

    calendar: WorkingCalendar
    commitments: dict[tuple[str, str], Commitment]
    default: Commitment
    reminder_before: Commitment  # "remind when the deadline is this close", counted on the same calendar

    def commitment(self, category: str, priority: str) -> Commitment:
        return self.commitments.get((category, priority), self.default)

    def due_at(self, category: str, priority: str, start: datetime) -> datetime:
        return self.commitment(category, priority).deadline(self.calendar, start)

    def reminder_threshold(self, now: datetime) -> datetime:
        """Orders due before this moment are inside the reminder window at `now`."""
        return self.reminder_before.deadline(self.calendar, now)


def load_sla(path: Path | None = None) -> SlaPolicy:
    raw = yaml.safe_load((path or DEFAULT_SLA_PATH).read_text(encoding="utf-8")) or {}
    return parse_sla(raw)


def parse_sla(raw: dict[str, Any]) -> SlaPolicy:
    calendar = WorkingCalendar(CalendarConfig.from_dict(raw.get("calendar") or {}))
    commitments: dict[tuple[str, str], Commitment] = {}
    for category, by_priority in (raw.get("deadlines") or {}).items():
        if category not in Category.__members__.values():
            raise ValueError(f"sla: unknown category {category!r}")
        for priority, spec in (by_priority or {}).items():
            if priority not in Priority.__members__.values():
                raise ValueError(f"sla: unknown priority {priority!r} under {category}")
            commitments[(category, priority)] = Commitment.parse(spec, f"deadlines.{category}.{priority}")
    default = Commitment.parse(raw.get("default", {"working_days": 5}), "default")
    reminder = Commitment.parse(raw.get("reminder_before", {"working_hours": 4}), "reminder_before")
    return SlaPolicy(calendar, commitments, default, reminder)
