"""What the inbox reads: the list of conversations, one conversation with its whole history and the contact panel,
the supervisor's figures, and which queues a member of staff may see.
"""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy import func, select

from gateway.api_types import ascii_int
from gateway.clock import iso, utc, utc_or_none
from gateway.pipeline import message_view
from gateway.storage import ChannelIdentity, Contact, Conversation, Message
from handoff.context import DESK_ROLES, PERSON_STATUSES, HandoffContext, HandoffNotFound
from handoff.models import Agent, ConversationEvent, CsatScore, Handoff

log = structlog.get_logger(__name__)


def _head(conversation: Conversation, handoff: Handoff | None, agent_name: str | None) -> dict[str, Any]:
    """What the list and the conversation view both show of a conversation: where it is and who has it."""
    return {
        "id": conversation.id,
        "status": conversation.status,
        "channel": conversation.channel,
        "language": conversation.language,
        "department": handoff.department if handoff else None,
        "agent_id": handoff.agent_id if handoff else None,
        "agent_name": agent_name,
        "pending_since": iso(handoff.pending_since) if handoff else None,
    }


def _actor_name(actor: str, names: dict[int, str]) -> str:
    if actor.startswith("agent:") and ascii_int(actor[6:]) is not None:
        return names.get(int(actor[6:]), actor)
    return actor


class InboxViews:
    def __init__(self, context: HandoffContext) -> None:
        self.context = context

    def scope(self, staff_departments: list[str] | tuple[str, ...], sees_all: bool) -> tuple[str, ...] | None:
        """The departments whose conversations a member of staff may see (None: all, for admins). Staff with no
        department work the default queue."""
        if sees_all:
            return None
        return tuple(staff_departments) or (self.context.settings.default_department,)

    async def department_of(self, conversation_id: str) -> str | None:
        """The queue a conversation belongs to (the default one before any handoff); None: no such conversation."""
        async with self.context.db.sessions() as session:
            row = (await session.execute(
                select(Conversation.id, Handoff.department)
                .outerjoin(Handoff, Handoff.conversation_id == Conversation.id)
                .where(Conversation.id == conversation_id)
            )).first()
        if row is None:
            return None
        return row.department or self.context.settings.default_department

    async def conversations(self, *, status: tuple[str, ...] = PERSON_STATUSES, channel: str | None = None,
                            department: str | None = None, agent_id: int | None = None, unassigned: bool = False,
                            limit: int = 100, departments: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        """Conversations for the inbox list, newest activity first, with waiting time and unread counts;
        `departments`: only those of these queues (None: every queue)."""
        context = self.context
        query = (
            select(Conversation, Handoff, Contact.display_name, Agent.name)
            .join(Contact, Contact.id == Conversation.contact_id)
            .outerjoin(Handoff, Handoff.conversation_id == Conversation.id)
            .outerjoin(Agent, Agent.id == Handoff.agent_id)
            .order_by(Conversation.last_activity_at.desc())
            .limit(limit)
        )
        if status:
            query = query.where(Conversation.status.in_(status))
        if channel:
            query = query.where(Conversation.channel == channel)
        if department:
            query = query.where(Handoff.department == department)
        if departments is not None:
            queue = func.coalesce(Handoff.department, context.settings.default_department)
            query = query.where(queue.in_(departments))
        if agent_id is not None:
            query = query.where(Handoff.agent_id == agent_id)
        if unassigned:
            query = query.where(Handoff.agent_id.is_(None))
        now = context.clock()
        async with context.db.sessions() as session:
            rows = (await session.execute(query)).all()
            ids = [conversation.id for conversation, *_ in rows]
            last: dict[str, Message] = {}
            if ids:
                newest = (
                    select(func.max(Message.id)).where(Message.conversation_id.in_(ids))
                    .group_by(Message.conversation_id)
                )
                for message in (await session.execute(select(Message).where(Message.id.in_(newest)))).scalars():
                    last[message.conversation_id] = message
        items = []
        for conversation, handoff, display_name, agent_name in rows:
            pending_since = utc_or_none(handoff.pending_since) if handoff else None
            waiting = (now - pending_since).total_seconds() if pending_since and conversation.status == "pending" \
                else None
            preview = last.get(conversation.id)
            items.append({
                **_head(conversation, handoff, agent_name),
                "contact_name": display_name,
                "unread": handoff.unread if handoff else 0,
                "waiting_seconds": waiting,
                "last_activity_at": iso(conversation.last_activity_at),
                "last_message": {"from": preview.sender, "text": (preview.original_text or preview.text or "")[:140]}
                if preview else None,
            })
        return items

    async def detail(self, conversation_id: str) -> dict[str, Any]:
        """The conversation view: the whole history with events and notes, and the contact panel."""
        context = self.context
        async with context.db.sessions() as session:
            conversation = await session.get(Conversation, conversation_id)
            if conversation is None:
                raise HandoffNotFound(conversation_id)
            handoff = await session.get(Handoff, conversation_id)
            contact = await session.get(Contact, conversation.contact_id)
            identities = (await session.execute(
                select(ChannelIdentity).where(ChannelIdentity.contact_id == conversation.contact_id)
            )).scalars().all()
            earlier = (await session.execute(
                select(Conversation).where(Conversation.contact_id == conversation.contact_id,
                                           Conversation.id != conversation_id)
                .order_by(Conversation.last_activity_at.desc()).limit(20)
            )).scalars().all()
            messages = (await session.execute(
                select(Message).where(Message.conversation_id == conversation_id).order_by(Message.id)
            )).scalars().all()
            events = (await session.execute(
                select(ConversationEvent).where(ConversationEvent.conversation_id == conversation_id)
                .order_by(ConversationEvent.id)
            )).scalars().all()
            agent_names = {a.id: a.name for a in (await session.execute(select(Agent))).scalars()}
        work_orders: list[dict[str, Any]] = []
        if context.work_orders is not None:
            from crm_adapter.backend import OrderFilter

            try:
                found = await context.work_orders.find(OrderFilter(contact_id=conversation.contact_id, limit=20))
                work_orders = [{"number": o.number, "title": o.title, "status": o.status,
                                "department": o.department, "created_at": iso(o.created_at)} for o in found]
            except Exception as exc:  # the CRM being down must not take the conversation view with it
                log.warning("handoff.work_orders_unavailable", error=repr(exc))
        history: list[dict[str, Any]] = []
        for m in messages:
            view = message_view(m)
            meta = (m.payload or {}).get("meta") or {}
            view.update(kind="message", agent=meta.get("agent"), delivery_state=m.delivery_state,
                        reply_payload=(m.payload or {}).get("reply_payload"), turn_state=m.turn_state,
                        sender_verified=(m.payload or {}).get("sender_verified", True))
            history.append(view)
        for e in events:
            history.append({
                "kind": e.kind, "id": f"e{e.id}", "from_status": e.from_status, "to_status": e.to_status,
                "actor": e.actor, "actor_name": _actor_name(e.actor, agent_names), "reason": e.reason,
                "data": e.data, "created_at": iso(e.created_at),
            })
        history.sort(key=lambda item: item["created_at"] or "")
        agent_name = agent_names.get(handoff.agent_id) if handoff and handoff.agent_id else None
        return {
            **_head(conversation, handoff, agent_name),
            "history": history,
            "contact": {
                "id": conversation.contact_id,
                "name": contact.display_name if contact else None,
                "phone": contact.phone if contact else None,
                "identities": [{"channel": i.channel, "account": i.channel_account, "user": i.external_user_id}
                               for i in identities],
                "conversations": [{"id": c.id, "channel": c.channel, "status": c.status,
                                   "last_activity_at": iso(c.last_activity_at)} for c in earlier],
                "work_orders": work_orders,
            },
        }

    async def stats(self) -> dict[str, Any]:
        """The supervisor's view: waiting, open per agent, longest wait, first-response time and CSAT of the day."""
        context = self.context
        now = context.clock()
        local_midnight = now.astimezone(context.hours.zone).replace(hour=0, minute=0, second=0, microsecond=0)
        async with context.db.sessions() as session:
            waiting = (await session.execute(
                select(Handoff.department, func.count(), func.min(Handoff.pending_since))
                .join(Conversation, Conversation.id == Handoff.conversation_id)
                .where(Conversation.status == "pending").group_by(Handoff.department)
            )).all()
            per_agent = (await session.execute(
                select(Agent.id, Agent.name, Agent.online, Agent.capacity, func.count(Conversation.id))
                .outerjoin(Handoff, Handoff.agent_id == Agent.id)
                .outerjoin(Conversation, (Conversation.id == Handoff.conversation_id)
                           & (Conversation.status == "open"))
                .where(Agent.role.in_(DESK_ROLES))
                .group_by(Agent.id, Agent.name, Agent.online, Agent.capacity).order_by(Agent.name)
            )).all()
            responded = (await session.execute(
                select(Handoff.pending_since, Handoff.first_response_at)
                .where(Handoff.first_response_at >= local_midnight, Handoff.pending_since.is_not(None))
            )).all()
            csat = (await session.execute(
                select(func.count(), func.avg(CsatScore.score)).where(CsatScore.created_at >= local_midnight)
            )).one()
        oldest = [utc(row[2]) for row in waiting if row[2] is not None]
        longest = max(((now - o).total_seconds() for o in oldest), default=None)
        first = [(utc(b) - utc(a)).total_seconds() for a, b in responded if a and b]
        return {
            "waiting": sum(int(row[1]) for row in waiting),
            "waiting_by_department": {row[0]: int(row[1]) for row in waiting},
            "longest_wait_seconds": longest,
            "open_per_agent": [{"agent_id": r[0], "name": r[1], "online": r[2], "capacity": r[3], "open": int(r[4])}
                               for r in per_agent],
            "first_response_seconds_avg": sum(first) / len(first) if first else None,
            "csat_today": {"count": int(csat[0]), "average": float(csat[1]) if csat[1] is not None else None},
        }
