"""What every part of the handoff shares: its collaborators and settings, who acts (`Staff`), the errors it raises,
and the steps the parts take alike (record an event, tell the desks, tell the citizen, hold the conversation's lock).

`HandoffService` (handoff/service.py) is a `HandoffContext` and hands itself to each part. The parts read the
collaborators from it when they use them, so one replaced on the service (a test's clock or hours) serves them all.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import topics
from gateway.calendar import WorkingCalendar
from gateway.clock import utc_now
from gateway.coordination import Coordination
from gateway.message import OutboundMessage
from gateway.pipeline import Pipeline
from gateway.storage import Conversation, Database
from handoff.agents import AgentStore
from handoff.models import ConversationEvent, Handoff

if TYPE_CHECKING:
    from crm_adapter.service import WorkOrderService

log = structlog.get_logger(__name__)

PERSON_STATUSES = ("pending", "open")  # a person has the conversation: waiting in a queue, or with an agent
DESK_ROLES = ("agent", "supervisor")  # the roles that work queues (admins and content editors take no handoffs)
TOPIC = topics.INBOX  # the coordination topic of the desks' events (listed in handoff/service.py)


class HandoffError(Exception):
    """A request the status machine refuses (HTTP 404/409 with this message)."""


class HandoffConflict(HandoffError):
    """Someone else changed the conversation first (another agent claimed it …)."""


class HandoffNotFound(HandoffError):
    """No such conversation (or agent)."""


@dataclass(frozen=True)
class Staff:
    """Who acts: an agent (id, display name) or a desk acting for one."""

    agent_id: int | None
    name: str

    @property
    def actor(self) -> str:
        return f"agent:{self.agent_id}" if self.agent_id is not None else self.name


@dataclass(frozen=True)
class HandoffSettings:
    default_department: str = "hotline"
    wait_notice_seconds: float = 300.0
    fallback_confidence: float = 0.3


class HandoffContext:
    """The collaborators of the handoff, and the steps every part of it takes the same way."""

    def __init__(self, db: Database, coordination: Coordination, pipeline: Pipeline, agents: AgentStore,
                 hours: WorkingCalendar, settings: HandoffSettings | None = None,
                 work_orders: WorkOrderService | None = None) -> None:
        self.db = db
        self.coordination = coordination
        self.pipeline = pipeline
        self.agents = agents
        self.hours = hours
        self.settings = settings or HandoffSettings()
        self.work_orders = work_orders
        self.clock = utc_now

    def lock(self, conversation_id: str) -> AbstractAsyncContextManager[None]:
        """The lock the pipeline holds for a bot turn: an agent's command never interleaves with one."""
        return self.coordination.lock(topics.conversation(conversation_id))

    def new_handoff(self, session: AsyncSession, conversation_id: str, now: datetime) -> Handoff:
        """The person side of a conversation that never had one: the default queue, last with the bot, since `now`."""
        handoff = Handoff(conversation_id=conversation_id, department=self.settings.default_department,
                          last_status="bot", unread=0, pending_since=now, updated_at=now)
        session.add(handoff)
        return handoff

    def event(self, conversation_id: str, kind: str, from_status: str | None, to_status: str | None, actor: str,
              reason: str | None, data: dict[str, Any] | None = None) -> ConversationEvent:
        return ConversationEvent(conversation_id=conversation_id, kind=kind, from_status=from_status,
                                 to_status=to_status, actor=actor, reason=reason, data=data or {},
                                 created_at=self.clock())

    async def publish(self, event: dict[str, Any]) -> None:
        await self.coordination.publish(TOPIC, event)

    async def publish_status(self, conversation_id: str, status: str, previous: str | None, actor: str,
                             reason: str) -> None:
        await self.publish({"type": "status", "conversation_id": conversation_id, "status": status,
                            "previous": previous, "actor": actor, "reason": reason})

    async def publish_presence(self, agent_id: int, online: bool) -> None:
        await self.publish({"type": "agent", "agent_id": agent_id, "online": online})

    async def language_of(self, conversation_id: str) -> str:
        async with self.db.sessions() as session:
            conversation = await session.get(Conversation, conversation_id)
        return conversation.language if conversation else "zh"

    async def say(self, conversation_id: str, message: OutboundMessage, sender: str) -> None:
        """Tell the citizen on their channel, like the bot would."""
        try:
            await self.pipeline.say(conversation_id, [message], sender)
        except LookupError:  # a conversation with no inbound message (made by hand): nobody to tell
            log.info("handoff.nobody_to_tell", conversation_id=conversation_id)
