"""The centre's figures over a period, computed from the stored events (docs/metrics.md defines each one).

A period is whole days in the centre's time zone: [from 00:00, to + 1 day 00:00). Conversations count when a
citizen wrote in them during the period; work orders count when they were filed in it (a repeat report linked to an
order is that order's, not a new one). Rates whose denominator is zero are None ("no data"), never 0.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, case, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_adapter.models import WorkOrder, WorkOrderStep
from crm_adapter.workflow import OPEN
from gateway.calendar import WorkingCalendar
from gateway.clock import utc
from gateway.storage import Conversation, Database, Message
from handoff.models import Agent, ConversationEvent, CsatScore, Handoff

RESOLVED = ("resolved", "closed")
ACCEPTED = ("in_progress", "resolved", "closed")  # a department took the order up, or settled it at once
SATISFIED = 4  # a 回访 answer of 4 or 5 out of 5


@dataclass(frozen=True)
class Period:
    first: date
    last: date  # inclusive
    zone: ZoneInfo

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time.min, self.zone).astimezone(UTC)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), time.min, self.zone).astimezone(UTC)


@dataclass(frozen=True)
class Filters:
    channel: str | None = None
    department: str | None = None
    category: str | None = None
    language: str | None = None


@dataclass
class DepartmentFigures:
    department: str
    filed: int = 0
    accepted_in_time: int = 0
    resolved: int = 0
    resolved_on_time: int = 0
    overdue: int = 0
    rated: int = 0
    satisfied: int = 0
    returned: int = 0

    @property
    def response_rate(self) -> float | None:
        return _rate(self.accepted_in_time, self.filed)

    @property
    def resolution_rate(self) -> float | None:
        return _rate(self.resolved, self.filed)

    @property
    def satisfaction_rate(self) -> float | None:
        return _rate(self.satisfied, self.rated)

    @property
    def on_time_rate(self) -> float | None:
        # Decided orders only: resolved (on time or late) or already past their deadline while still open.
        return _rate(self.resolved_on_time, self.resolved + self.overdue)


@dataclass
class PeopleFigures:
    """One agent's (or one queue's) handoffs first answered in the period, and the citizens' ratings in it."""

    key: str  # the agent's name, or the queue's department
    answered: int = 0
    first_response_p50_seconds: float | None = None
    first_response_p90_seconds: float | None = None
    csat_count: int = 0
    csat_average: float | None = None


def _percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))], 1)


@dataclass
class Summary:
    period: Period
    conversations: int = 0
    messages: int = 0
    by_channel: dict[str, int] = field(default_factory=dict)
    messages_by_channel: dict[str, int] = field(default_factory=dict)
    citizens: int = 0
    new_citizens: int = 0
    handed_off: int = 0
    handoff_reasons: dict[str, int] = field(default_factory=dict)
    departments: list[DepartmentFigures] = field(default_factory=list)
    agents: list[PeopleFigures] = field(default_factory=list)
    queues: list[PeopleFigures] = field(default_factory=list)

    @property
    def handoff_rate(self) -> float | None:
        return _rate(self.handed_off, self.conversations)

    @property
    def containment_rate(self) -> float | None:
        rate = self.handoff_rate
        return None if rate is None else round(1 - rate, 4)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


@dataclass
class Reports:
    """Figures from the database; `calendar` is the working-day calendar deadlines are counted on."""

    db: Database
    calendar: WorkingCalendar
    response_working_hours: float = 8.0  # accepted within one working day of office hours counts as a response

    async def summary(self, period: Period, filters: Filters = Filters(), now: datetime | None = None) -> Summary:
        now = utc(now or datetime.now(UTC))
        summary = Summary(period)
        async with self.db.sessions() as session:
            await self._conversations(session, summary, filters)
            summary.departments = await self._departments(session, period, filters, now)
            summary.agents, summary.queues = await self._people(session, period)
        return summary

    async def _people(self, session: AsyncSession, period: Period
                      ) -> tuple[list[PeopleFigures], list[PeopleFigures]]:
        """First response (from waiting to a person's first answer) and CSAT, per agent and per queue. A
        conversation's latest handoff is what is kept, so an earlier handoff of the same conversation is not."""
        names: dict[int | None, str] = {i: n for i, n in (await session.execute(select(Agent.id, Agent.name))).all()}
        answered = (await session.execute(
            select(Handoff.agent_id, Handoff.department, Handoff.pending_since, Handoff.first_response_at)
            .where(Handoff.first_response_at >= period.start, Handoff.first_response_at < period.end,
                   Handoff.pending_since.is_not(None))
        )).all()
        waits: dict[tuple[str, str], list[float]] = defaultdict(list)
        for agent_id, department, since, first in answered:
            if since is None or first is None:
                continue
            seconds = max(0.0, (utc(first) - utc(since)).total_seconds())
            waits[("agent", names.get(agent_id, f"agent:{agent_id}"))].append(seconds)
            waits[("queue", department)].append(seconds)
        ratings = (await session.execute(
            select(CsatScore.agent_id, CsatScore.score, Handoff.department)
            .join(Handoff, Handoff.conversation_id == CsatScore.conversation_id, isouter=True)
            .where(CsatScore.created_at >= period.start, CsatScore.created_at < period.end)
        )).all()
        scores: dict[tuple[str, str], list[int]] = defaultdict(list)
        for agent_id, score, department in ratings:
            scores[("agent", names.get(agent_id, f"agent:{agent_id}"))].append(int(score))
            if department:
                scores[("queue", department)].append(int(score))
        figures: dict[tuple[str, str], PeopleFigures] = {}
        for key in {*waits, *scores}:
            seen, rated = waits.get(key, []), scores.get(key, [])
            figures[key] = PeopleFigures(
                key[1], len(seen), _percentile(seen, 50), _percentile(seen, 90), len(rated),
                round(sum(rated) / len(rated), 2) if rated else None,
            )
        ordered = sorted(figures.items(), key=lambda kv: (-kv[1].answered, kv[1].key))
        return ([f for (kind, _), f in ordered if kind == "agent"], [f for (kind, _), f in ordered if kind == "queue"])

    async def _conversations(self, session: AsyncSession, summary: Summary, filters: Filters) -> None:
        period = summary.period
        written = [Message.direction == "in", Message.sender == "citizen", Message.created_at >= period.start,
                   Message.created_at < period.end]
        if filters.language:
            written.append(Message.language == filters.language)
        if filters.channel:
            written.append(Conversation.channel == filters.channel)
        rows = (await session.execute(
            select(Conversation.channel, func.count(func.distinct(Message.conversation_id)), func.count(Message.id))
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(*written).group_by(Conversation.channel)
        )).all()
        for channel, conversations, messages in rows:
            summary.by_channel[channel] = int(conversations)
            summary.messages_by_channel[channel] = int(messages)
        summary.conversations = sum(summary.by_channel.values())
        summary.messages = sum(summary.messages_by_channel.values())
        active = (select(Message.conversation_id).join(Conversation, Conversation.id == Message.conversation_id)
                  .where(*written).distinct().scalar_subquery())
        contacts = (select(Conversation.contact_id).join(Message, Message.conversation_id == Conversation.id)
                    .where(*written).distinct().subquery())
        summary.citizens = int((await session.execute(select(func.count()).select_from(contacts))).scalar_one())
        earlier = (select(Message.id).join(Conversation, Conversation.id == Message.conversation_id)
                   .where(Conversation.contact_id == contacts.c.contact_id, Message.direction == "in",
                          Message.sender == "citizen", Message.created_at < period.start))
        summary.new_citizens = int((await session.execute(
            select(func.count()).select_from(contacts).where(~exists(earlier))
        )).scalar_one())
        handoffs = (await session.execute(
            select(ConversationEvent.conversation_id, ConversationEvent.reason)
            .where(ConversationEvent.kind == "status", ConversationEvent.to_status == "pending",
                   ConversationEvent.created_at >= period.start, ConversationEvent.created_at < period.end,
                   ConversationEvent.conversation_id.in_(active))
            .order_by(ConversationEvent.id)
        )).all()
        first_reason: dict[str, str] = {}
        for conversation_id, reason in handoffs:  # a conversation handed over twice counts once, by its first reason
            first_reason.setdefault(conversation_id, reason or "unknown")
        summary.handed_off = len(first_reason)
        reasons: dict[str, int] = defaultdict(int)
        for reason in first_reason.values():
            reasons[reason] += 1
        summary.handoff_reasons = dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])))

    async def _departments(self, session: AsyncSession, period: Period, filters: Filters, now: datetime
                           ) -> list[DepartmentFigures]:
        filed = [WorkOrder.created_at >= period.start, WorkOrder.created_at < period.end,
                 WorkOrder.duplicate_of.is_(None)]
        for column, value in ((WorkOrder.department, filters.department), (WorkOrder.category, filters.category),
                              (WorkOrder.channel, filters.channel), (WorkOrder.language, filters.language)):
            if value:
                filed.append(column == value)
        resolved = WorkOrder.status.in_(RESOLVED)
        open_ = WorkOrder.status.in_([s.value for s in OPEN])
        returned = exists(select(WorkOrderStep.id).where(WorkOrderStep.work_order_id == WorkOrder.id,
                                                         WorkOrderStep.to_status == "returned"))

        def count(condition: ColumnElement[bool]) -> ColumnElement[int]:
            return func.sum(case((condition, 1), else_=0))

        rows = (await session.execute(
            select(
                WorkOrder.department, func.count(WorkOrder.id), count(resolved),
                count(and_(resolved, WorkOrder.resolved_at.is_not(None), WorkOrder.resolved_at <= WorkOrder.due_at)),
                count(and_(open_, WorkOrder.due_at < now)), count(WorkOrder.satisfaction.is_not(None)),
                count(WorkOrder.satisfaction >= SATISFIED), count(returned),
            ).where(*filed).group_by(WorkOrder.department)
        )).all()
        figures = {
            department: DepartmentFigures(
                department, filed=int(filed_count), resolved=int(done or 0), resolved_on_time=int(on_time or 0),
                overdue=int(late or 0), rated=int(rated or 0), satisfied=int(satisfied or 0),
                returned=int(sent_back or 0),
            )
            for department, filed_count, done, on_time, late, rated, satisfied, sent_back in rows
        }
        # Accepted in time: the first step that took the order up, within the response commitment in working time.
        first_accept = (
            select(WorkOrderStep.work_order_id, func.min(WorkOrderStep.created_at).label("accepted_at"))
            .where(WorkOrderStep.to_status.in_(ACCEPTED)).group_by(WorkOrderStep.work_order_id).subquery()
        )
        accepted: list[tuple[str, datetime, datetime]] = [tuple(r) for r in (await session.execute(  # type: ignore[misc]
            select(WorkOrder.department, WorkOrder.created_at, first_accept.c.accepted_at)
            .join(first_accept, first_accept.c.work_order_id == WorkOrder.id).where(*filed)
        )).all()]
        window = timedelta(hours=self.response_working_hours)
        for department, created_at, accepted_at in accepted:
            if utc(accepted_at) <= self.calendar.add_working_time(utc(created_at), window):
                figures[department].accepted_in_time += 1
        return sorted(figures.values(), key=lambda f: (-f.filed, f.department))
