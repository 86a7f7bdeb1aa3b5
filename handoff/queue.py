"""The queues: a conversation enters its department's queue (or hears when people are back), is given to the
least-loaded online agent of that department with room left, and is told its place in the queue.
"""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.message import OutboundMessage
from gateway.storage import Conversation
from handoff import texts
from handoff.context import DESK_ROLES, PERSON_STATUSES, HandoffContext
from handoff.models import Agent, Handoff

log = structlog.get_logger(__name__)


def _desk_staff(*columns: Any) -> Select[Any]:
    """Active members of staff who work queues."""
    return select(*columns).where(Agent.active.is_(True), Agent.role.in_(DESK_ROLES))


class HandoffQueue:
    def __init__(self, context: HandoffContext) -> None:
        self.context = context

    async def enter(self, session: AsyncSession, conversation: Conversation, handoff: Handoff | None,
                    previous: str, actor: str, reason: str, department: str | None = None) -> list[OutboundMessage]:
        """Put the conversation in `department`'s queue (the default one when None), afresh: no agent, no notice, no
        survey yet. Returns what the citizen is told: their place, or when people are back."""
        context = self.context
        now = context.clock()
        if handoff is None:
            handoff = context.new_handoff(session, conversation.id, now)
        handoff.department = department or context.settings.default_department
        handoff.agent_id = None
        handoff.last_status = "pending"
        handoff.pending_since, handoff.claimed_at, handoff.first_response_at = now, None, None
        handoff.wait_notice_at, handoff.survey, handoff.updated_at = None, None, now
        session.add(context.event(conversation.id, "status", previous, "pending", actor, reason))
        await session.flush()
        log.info("handoff.pending", conversation_id=conversation.id, reason=reason, department=handoff.department)
        if not context.hours.is_open(now):
            return [texts.closed(conversation.language, context.hours.next_open(now))]
        await self._assign(session, handoff)
        return [texts.queued(conversation.language, await self.position(session, handoff))]

    async def staffed(self, session: AsyncSession, department: str | None) -> str | None:
        """The department itself when some active agent works for it, else None (the default queue): a handoff must
        never wait in a queue nobody watches."""
        if not department or department == self.context.settings.default_department:
            return None
        agents = (await session.execute(_desk_staff(Agent.departments))).scalars().all()
        return department if any(department in (d or []) for d in agents) else None

    async def position(self, session: AsyncSession, handoff: Handoff) -> int:
        """1 for the first in its department's queue."""
        ahead = (
            await session.execute(
                select(func.count())
                .select_from(Handoff)
                .join(Conversation, Conversation.id == Handoff.conversation_id)
                .where(Conversation.status == "pending", Handoff.department == handoff.department,
                       Handoff.pending_since < handoff.pending_since)
            )
        ).scalar_one()
        return int(ahead) + 1

    async def _assign(self, session: AsyncSession, handoff: Handoff) -> None:
        """The least-loaded online agent of the department with room left; else the conversation waits in its queue."""
        agents = (await session.execute(_desk_staff(Agent).where(Agent.online.is_(True)))).scalars()
        candidates = [a for a in agents if handoff.department in (a.departments or [])]
        if not candidates:
            return
        loads = dict(
            (
                await session.execute(
                    select(Handoff.agent_id, func.count())
                    .join(Conversation, Conversation.id == Handoff.conversation_id)
                    .where(Conversation.status.in_(PERSON_STATUSES), Handoff.agent_id.is_not(None))
                    .group_by(Handoff.agent_id)
                )
            ).all()
        )
        free = [a for a in candidates if loads.get(a.id, 0) < a.capacity]
        if not free:
            return
        chosen = min(free, key=lambda a: (loads.get(a.id, 0), a.id))
        handoff.agent_id = chosen.id
        session.add(self.context.event(handoff.conversation_id, "assign", None, None, "system",
                                       "least-loaded online agent of the department",
                                       {"agent_id": chosen.id, "department": handoff.department}))
        log.info("handoff.assigned", conversation_id=handoff.conversation_id, agent_id=chosen.id)
