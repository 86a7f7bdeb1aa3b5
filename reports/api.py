"""The reports API: `GET /api/reports/summary?from=YYYY-MM-DD&to=YYYY-MM-DD` (supervisors, admins, ADMIN_TOKEN),
dates in the centre's time zone, optional filters by channel, department, category and language."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from datetime import date, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from pydantic import BaseModel, Field

from gateway.auth import SUPERVISOR_ROLES, Principal, require_roles
from gateway.calendar import WorkingCalendar
from gateway.services import Services, services_of
from reports.figures import DepartmentFigures, Filters, Period, Reports, Summary

router = APIRouter(prefix="/api/reports", tags=["reports"])
Supervisor = Annotated[Principal, Depends(require_roles(*SUPERVISOR_ROLES))]
MAX_DAYS = 3660  # ten years: one query, never an unbounded one
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class DepartmentOut(BaseModel):
    department: str
    filed: int
    response_rate: float | None = Field(description="Accepted within the response commitment ÷ filed.")
    resolution_rate: float | None = Field(description="Resolved or closed now ÷ filed.")
    satisfaction_rate: float | None = Field(description="回访 answers of 4–5 ÷ answers.")
    on_time_rate: float | None = Field(description="Resolved by the deadline ÷ (resolved + open past the deadline).")
    overdue: int = Field(description="Filed in the period, still open and past the deadline now.")
    resolved: int
    returned: int = Field(description="Sent back to the dispatch desk (退单) at least once.")
    rated: int

    @classmethod
    def of(cls, figures: DepartmentFigures) -> DepartmentOut:
        return cls(
            department=figures.department, filed=figures.filed, response_rate=figures.response_rate,
            resolution_rate=figures.resolution_rate, satisfaction_rate=figures.satisfaction_rate,
            on_time_rate=figures.on_time_rate, overdue=figures.overdue, resolved=figures.resolved,
            returned=figures.returned, rated=figures.rated,
        )


class PeopleOut(BaseModel):
    name: str = Field(description="The agent's name, or the queue's department.")
    answered: int = Field(description="Handoffs a person first answered in the period.")
    first_response_p50_seconds: float | None
    first_response_p90_seconds: float | None
    csat_count: int
    csat_average: float | None = Field(description="The citizens' 1–5 ratings in the period, averaged.")


class SummaryOut(BaseModel):
    """The centre's figures for the period (docs/metrics.md); a rate with nothing to divide by is null."""

    model_config = {"populate_by_name": True}

    period_from: date = Field(alias="from")
    period_to: date = Field(alias="to")
    timezone: str
    conversations: int = Field(description="Conversations in which a citizen wrote during the period.")
    messages: int = Field(description="Citizens' messages in the period.")
    by_channel: dict[str, int] = Field(description="Those conversations by channel.")
    messages_by_channel: dict[str, int]
    citizens: int = Field(description="Contacts who wrote in the period.")
    new_citizens: int = Field(description="Of those, the ones who never wrote before it.")
    containment_rate: float | None = Field(description="Conversations the bot settled without a person ÷ all.")
    handoff_rate: float | None = Field(description="Conversations handed to a person in the period ÷ all.")
    handoffs: int
    handoff_reasons: dict[str, int]
    departments: list[DepartmentOut]
    agents: list[PeopleOut]
    queues: list[PeopleOut]

    @classmethod
    def of(cls, summary: Summary) -> SummaryOut:
        return cls.model_validate({
            "from": summary.period.first, "to": summary.period.last, "timezone": summary.period.zone.key,
            "conversations": summary.conversations, "messages": summary.messages, "by_channel": summary.by_channel,
            "messages_by_channel": summary.messages_by_channel, "citizens": summary.citizens,
            "new_citizens": summary.new_citizens, "containment_rate": summary.containment_rate,
            "handoff_rate": summary.handoff_rate, "handoffs": summary.handed_off,
            "handoff_reasons": summary.handoff_reasons,
            "departments": [DepartmentOut.of(f) for f in summary.departments],
            "agents": [PeopleOut(name=p.key, **{k: v for k, v in asdict(p).items() if k != "key"})
                       for p in summary.agents],
            "queues": [PeopleOut(name=p.key, **{k: v for k, v in asdict(p).items() if k != "key"})
                       for p in summary.queues],
        })


def reports_of(services: Services = Depends(services_of)) -> Reports:
    """Figures on the work orders' own working-day calendar (sla.yml) when the work-order service runs."""
    work_orders: Any = getattr(services, "work_orders", None)
    calendar = work_orders.sla.calendar if work_orders is not None else WorkingCalendar()
    settings: Any = services.settings
    return Reports(services.db, calendar, float(getattr(settings, "report_response_working_hours", 8.0)))


def period_of(first: date | None, last: date | None, zone: ZoneInfo) -> Period:
    today = datetime.now(zone).date()
    last = last or today
    first = first or last.replace(day=1)
    if first > last:
        raise HTTPException(422, "'from' is after 'to'")
    if (last - first).days >= MAX_DAYS:
        raise HTTPException(422, f"a period is at most {MAX_DAYS} days")
    return Period(first, last, zone)


Filtered = tuple[Period, Filters]


def period_and_filters(
    services: Annotated[Services, Depends(services_of)],
    first: Annotated[date | None, Query(alias="from", description="First day (YYYY-MM-DD, the centre's zone); "
                                        "default: the 1st of the month of `to`")] = None,
    last: Annotated[date | None, Query(alias="to", description="Last day, included; default: today")] = None,
    channel: Annotated[str | None, Query(max_length=32)] = None,
    department: Annotated[str | None, Query(max_length=48)] = None,
    category: Annotated[str | None, Query(max_length=16)] = None,
    language: Annotated[str | None, Query(pattern="^(zh|en)$")] = None,
) -> Filtered:
    zone = ZoneInfo(str(getattr(services.settings, "service_timezone", "Asia/Shanghai")))
    return period_of(first, last, zone), Filters(channel, department, category, language)


def table_of(summary: SummaryOut) -> list[list[Any]]:
    """The summary as rows: the centre's figures, a blank line, then one row per department."""
    rows: list[list[Any]] = [["figure", "value"], ["from", str(summary.period_from)], ["to", str(summary.period_to)],
                             ["timezone", summary.timezone]]
    for name in ("conversations", "messages", "citizens", "new_citizens", "containment_rate", "handoff_rate",
                 "handoffs"):
        rows.append([name, getattr(summary, name)])
    rows += [[f"channel:{channel}", count] for channel, count in summary.by_channel.items()]
    rows += [[f"handoff_reason:{reason}", count] for reason, count in summary.handoff_reasons.items()]
    columns = ["department", "filed", "response_rate", "resolution_rate", "satisfaction_rate", "on_time_rate",
               "overdue", "resolved", "returned", "rated"]
    rows += [[], columns]
    rows += [[getattr(d, c) for c in columns] for d in summary.departments]
    return rows


@router.get("/summary.csv", response_class=Response, responses={200: {"content": {"text/csv": {}}}},
            summary="The summary as CSV (UTF-8 with BOM, so spreadsheet programs read Chinese right)")
async def summary_csv(_principal: Supervisor, reports: Annotated[Reports, Depends(reports_of)],
                      filtered: Annotated[Filtered, Depends(period_and_filters)]) -> Response:
    summary = SummaryOut.of(await reports.summary(*filtered))
    out = io.StringIO()
    writer = csv.writer(out)
    for row in table_of(summary):
        writer.writerow(["" if v is None else v for v in row])
    name = f"summary-{summary.period_from}-{summary.period_to}.csv"
    return Response("\ufeff" + out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/summary.xlsx", response_class=Response, summary="The summary as an Excel workbook",
            responses={200: {"content": {XLSX: {}}}})
async def summary_xlsx(_principal: Supervisor, reports: Annotated[Reports, Depends(reports_of)],
                       filtered: Annotated[Filtered, Depends(period_and_filters)]) -> Response:
    from openpyxl import Workbook  # loaded on the first export only

    summary = SummaryOut.of(await reports.summary(*filtered))
    book = Workbook()
    sheet = book.active
    sheet.title = "summary"
    for row in table_of(summary):
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    name = f"summary-{summary.period_from}-{summary.period_to}.xlsx"
    return Response(out.getvalue(), media_type=XLSX, headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/summary", response_model=SummaryOut, response_model_by_alias=True,
            summary="The centre's figures for a period: conversations by channel, containment, handoffs, and each "
                    "department's response, resolution, satisfaction and on-time rates")
async def summary(
    _principal: Supervisor,
    reports: Annotated[Reports, Depends(reports_of)],
    filtered: Annotated[Filtered, Depends(period_and_filters)],
) -> SummaryOut:
    return SummaryOut.of(await reports.summary(*filtered))
