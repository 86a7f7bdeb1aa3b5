"""The conversation's life with people: the status machine, assignment, notices to the citizen, the survey.

    bot ──request_human / not understood twice──▶ pending ──claim──▶ open ──resolve──▶ resolved ──next message──▶ bot
     └──────────────── an agent takes it from the list ────────────────▲      │
    pending/open ──hand back──▶ bot          open ──transfer to a department──▶ pending (that department's queue)

Every change is a `conversation_events` row (who, when, why). `HandoffService` is the one object the app, the desks
and the tests use; each of its jobs is done by a part beside it:

- handoff/triggers.py: when a conversation goes to people, and what the citizen's messages do meanwhile;
- handoff/queue.py: the queues, assignment by department and load, the citizen's place in the queue;
- handoff/commands.py: what agents do (claim, resolve, hand back, transfer, note, reply), safe against races;
- handoff/wait_notices.py: the second notice to a citizen still waiting;
- handoff/views.py: what the inbox reads (the list, one conversation, the supervisor's figures, queue scopes);
- handoff/context.py: what the parts share (the collaborators, `Staff`, the settings, the errors).

Events for other desks (the inbox sockets, a Slack desk) are published on the coordination topic "inbox":
`{type: "status", conversation_id, status, previous?, actor?, reason?}`, `{type: "activity", conversation_id,
status}` (a message in or out), `{type: "assign", conversation_id, agent_id, department}`, `{type: "note",
conversation_id}`, `{type: "unread", conversation_id, unread}`, `{type: "csat", conversation_id, score}` and
`{type: "agent", agent_id, online}`. A desk acts through `HandoffService` (claim, reply, resolve, hand_back,
transfer, note) with a `Staff` of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.calendar import WorkingCalendar
from gateway.coordination import Coordination
from gateway.engine import BotTurn
from gateway.hooks import Intercept
from gateway.message import OutboundMessage
from gateway.pipeline import Pipeline
from gateway.storage import Conversation, Database, Message
from handoff.agents import AgentStore
from handoff.commands import AgentCommands
from handoff.context import (
    PERSON_STATUSES,
    HandoffConflict,
    HandoffContext,
    HandoffError,
    HandoffNotFound,
    HandoffSettings,
    Staff,
)
from handoff.queue import HandoffQueue
from handoff.triggers import HandoffTriggers
from handoff.views import InboxViews
from handoff.wait_notices import WaitNotices

if TYPE_CHECKING:
    from crm_adapter.service import WorkOrderService

__all__ = ["HandoffConflict", "HandoffError", "HandoffNotFound", "HandoffService", "HandoffSettings", "Staff"]


class HandoffService(HandoffContext):
    """The handoff: its collaborators (those of `HandoffContext`) and every job, each handed to its part."""

    def __init__(self, db: Database, coordination: Coordination, pipeline: Pipeline, agents: AgentStore,
                 hours: WorkingCalendar, settings: HandoffSettings | None = None,
                 work_orders: WorkOrderService | None = None) -> None:
        super().__init__(db, coordination, pipeline, agents, hours, settings, work_orders)
        queue = HandoffQueue(self)
        self._triggers = HandoffTriggers(self, queue)
        self._commands = AgentCommands(self, queue)
        self._wait_notices = WaitNotices(self, queue)
        self._views = InboxViews(self)

    # ---- the pipeline's hooks (handoff/triggers.py) -----------------------------------------------------------------

    async def before_turn(self, conversation: Conversation, message: Message, text: str) -> Intercept | None:
        return await self._triggers.before_turn(conversation, message, text)

    async def after_turn(self, session: AsyncSession, conversation: Conversation, message: Message, turn: BotTurn
                         ) -> list[OutboundMessage]:
        return await self._triggers.after_turn(session, conversation, message, turn)

    # ---- what agents do (handoff/commands.py) -----------------------------------------------------------------------

    async def claim(self, conversation_id: str, staff: Staff) -> None:
        await self._commands.claim(conversation_id, staff)

    async def resolve(self, conversation_id: str, staff: Staff) -> None:
        await self._commands.resolve(conversation_id, staff)

    async def hand_back(self, conversation_id: str, staff: Staff) -> None:
        await self._commands.hand_back(conversation_id, staff)

    async def transfer(self, conversation_id: str, staff: Staff, *, agent_id: int | None = None,
                       department: str | None = None) -> None:
        await self._commands.transfer(conversation_id, staff, agent_id=agent_id, department=department)

    async def note(self, conversation_id: str, staff: Staff, text: str) -> None:
        await self._commands.note(conversation_id, staff, text)

    async def reply(self, conversation_id: str, staff: Staff, message: OutboundMessage,
                    via: str | None = None) -> Message:
        return await self._commands.reply(conversation_id, staff, message, via)

    async def mark_read(self, conversation_id: str) -> None:
        await self._commands.mark_read(conversation_id)

    # ---- the second notice while waiting (handoff/wait_notices.py) --------------------------------------------------

    async def run_background(self, poll_seconds: float | None = None) -> None:
        await self._wait_notices.run(poll_seconds)

    async def send_wait_notices(self) -> int:
        return await self._wait_notices.send_due()

    # ---- what the inbox reads (handoff/views.py) --------------------------------------------------------------------

    def scope(self, staff_departments: list[str] | tuple[str, ...], sees_all: bool) -> tuple[str, ...] | None:
        return self._views.scope(staff_departments, sees_all)

    async def department_of(self, conversation_id: str) -> str | None:
        return await self._views.department_of(conversation_id)

    async def detail(self, conversation_id: str) -> dict[str, Any]:
        return await self._views.detail(conversation_id)

    async def stats(self) -> dict[str, Any]:
        return await self._views.stats()

    # Last in the class: to mypy, `list[...]` in a signature after a method named `list` means that method.
    async def list(self, *, status: tuple[str, ...] = PERSON_STATUSES, channel: str | None = None,
                   department: str | None = None, agent_id: int | None = None, unassigned: bool = False,
                   limit: int = 100, departments: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        return await self._views.conversations(status=status, channel=channel, department=department,
                                               agent_id=agent_id, unassigned=unassigned, limit=limit,
                                               departments=departments)
