"""What agents and desks do with a conversation: claim, resolve, hand back, transfer, note, reply, mark read.

Every status move goes through one conditional UPDATE on `conversations.status` (`_move`), which alone decides a
race: one agent wins, the other gets `HandoffConflict`. A move also holds the conversation's coordination lock, so
it never interleaves with a bot turn; the desks hear of it and the citizen is told after the lock is let go.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from sqlalchemy import CursorResult, update

from gateway.clock import utc_or_none
from gateway.message import OutboundMessage
from gateway.storage import Conversation, Message
from handoff import texts
from handoff.context import PERSON_STATUSES, HandoffConflict, HandoffContext, HandoffError, HandoffNotFound, Staff
from handoff.models import Agent, Handoff
from handoff.queue import HandoffQueue

log = structlog.get_logger(__name__)


class AgentCommands:
    def __init__(self, context: HandoffContext, queue: HandoffQueue) -> None:
        self.context = context
        self.queue = queue

    async def claim(self, conversation_id: str, staff: Staff) -> None:
        """Take the conversation (from the queue, or from the bot's live list): status open, assigned to `staff`."""
        await self._change(conversation_id, staff, ("pending", "bot", "resolved"), "open", "claimed", "claimed",
                           lambda language: texts.agent_joined(language, staff.name), assign=staff.agent_id)

    async def resolve(self, conversation_id: str, staff: Staff) -> None:
        # The survey is a system message with buttons: the web chat offers those of bot, agent and system messages.
        await self._change(conversation_id, staff, PERSON_STATUSES, "resolved", "resolved", "resolved", texts.survey,
                           survey=True)

    async def hand_back(self, conversation_id: str, staff: Staff) -> None:
        await self._change(conversation_id, staff, PERSON_STATUSES, "bot", "handed back to the bot", "handed back",
                           texts.handed_back)

    async def transfer(self, conversation_id: str, staff: Staff, *, agent_id: int | None = None,
                       department: str | None = None) -> None:
        """To another agent (keeps the status) or to a department's queue (pending there, auto-assigned)."""
        if (agent_id is None) == (department is None):
            raise HandoffError("transfer to exactly one of: an agent, a department")
        context = self.context
        async with context.lock(conversation_id):
            async with context.db.sessions() as session, session.begin():
                handoff = await session.get(Handoff, conversation_id)
                conversation = await session.get(Conversation, conversation_id)
                if conversation is None:
                    raise HandoffNotFound(conversation_id)
                if handoff is None or conversation.status not in PERSON_STATUSES:
                    raise HandoffConflict(f"the conversation is {conversation.status}, not with a person")
                if agent_id is not None:
                    target = await session.get(Agent, agent_id)
                    if target is None or not target.active:
                        raise HandoffNotFound(f"no agent {agent_id}")
                    handoff.agent_id, handoff.updated_at = agent_id, context.clock()
                    session.add(context.event(conversation_id, "transfer", None, None, staff.actor,
                                              f"to {target.name}", {"agent_id": agent_id}))
                    previous = None
                else:
                    assert department is not None
                    previous = conversation.status
                    conversation.status = "pending"
                    await self.queue.enter(session, conversation, handoff, previous, staff.actor,
                                           f"transferred to {department}", department=department)
                    session.add(context.event(conversation_id, "transfer", None, None, staff.actor,
                                              f"to {department}", {"department": department}))
        await context.publish({"type": "assign", "conversation_id": conversation_id, "agent_id": agent_id,
                               "department": department})
        if previous is not None and previous != "pending":
            await context.publish_status(conversation_id, "pending", previous, staff.actor, "transferred")

    async def note(self, conversation_id: str, staff: Staff, text: str) -> None:
        """A private note: in the agents' history, never sent to the citizen."""
        if not text.strip():
            raise HandoffError("the note is empty")
        context = self.context
        async with context.db.sessions() as session, session.begin():
            if await session.get(Conversation, conversation_id) is None:
                raise HandoffNotFound(conversation_id)
            session.add(context.event(conversation_id, "note", None, None, staff.actor, text.strip()[:4000]))
        await context.publish({"type": "note", "conversation_id": conversation_id})

    async def reply(self, conversation_id: str, staff: Staff, message: OutboundMessage,
                    via: str | None = None) -> Message:
        """The agent's words on the citizen's channel, like the bot's; replying to a waiting conversation claims it."""
        if not (message.text or "").strip() and not message.image and not message.buttons:
            raise HandoffError("the reply is empty")
        context = self.context
        async with context.db.sessions() as session:
            conversation = await session.get(Conversation, conversation_id)
            handoff = await session.get(Handoff, conversation_id)
        if conversation is None:
            raise HandoffNotFound(conversation_id)
        # An open conversation held by a desk without an inbox account (Slack) is not claimed again on each reply.
        unassigned = handoff is None or (handoff.agent_id is None and staff.agent_id is not None)
        if conversation.status != "open" or unassigned:
            await self.claim(conversation_id, staff)
        rows = await context.pipeline.say(conversation_id, [message], "agent",
                                          {"agent": staff.name, "agent_id": staff.agent_id,
                                           "conversation_status": "open", "via": via})
        async with context.db.sessions() as session, session.begin():
            handoff = await session.get(Handoff, conversation_id)
            if handoff is not None:
                handoff.unread = 0
                if handoff.first_response_at is None:
                    handoff.first_response_at = context.clock()
        await context.publish({"type": "activity", "conversation_id": conversation_id, "status": "open", "via": via})
        return rows[0]

    async def mark_read(self, conversation_id: str) -> None:
        async with self.context.db.sessions() as session, session.begin():
            await session.execute(update(Handoff).where(Handoff.conversation_id == conversation_id,
                                                        Handoff.unread != 0).values(unread=0))

    async def _change(self, conversation_id: str, staff: Staff, allowed: tuple[str, ...], to: str, reason: str,
                      announced: str, notice: Callable[[str], OutboundMessage], *, assign: int | None = None,
                      survey: bool = False) -> None:
        """A status move under the conversation's lock; then the desks hear of it (`announced`: the reason they are
        given) and the citizen is told `notice` in their language."""
        context = self.context
        async with context.lock(conversation_id):
            previous = await self._move(conversation_id, allowed, to, staff, reason, assign=assign, survey=survey)
        await context.publish_status(conversation_id, to, previous, staff.actor, announced)
        await context.say(conversation_id, notice(await context.language_of(conversation_id)), "system")

    async def _move(self, conversation_id: str, allowed: tuple[str, ...], to: str, staff: Staff, reason: str,
                    assign: int | None = None, survey: bool = False) -> str:
        """The conditional UPDATE every status change goes through; returns the previous status."""
        context = self.context
        metrics = context.pipeline.metrics
        now = context.clock()
        async with context.db.sessions() as session, session.begin():
            # The UPDATE comes first: it alone decides races (and on SQLite takes the write lock before any read).
            result: CursorResult[Any] = await session.execute(  # type: ignore[assignment]
                update(Conversation)
                .where(Conversation.id == conversation_id, Conversation.status.in_(allowed))
                .values(status=to, last_activity_at=now)
            )
            if result.rowcount != 1:
                current = await session.get(Conversation, conversation_id)
                if current is None:
                    raise HandoffNotFound(conversation_id)
                holder = await session.get(Handoff, conversation_id)
                who = f" (agent {holder.agent_id})" if holder and holder.agent_id else ""
                raise HandoffConflict(f"the conversation is already {current.status}{who}")
            handoff = await session.get(Handoff, conversation_id) or context.new_handoff(session, conversation_id, now)
            previous = handoff.last_status if handoff.last_status in allowed else allowed[0]
            handoff.last_status, handoff.updated_at = to, now
            if assign is not None:
                waited_since = utc_or_none(handoff.pending_since)
                if previous == "pending" and waited_since is not None:
                    metrics.handoff_wait_seconds.observe((now - waited_since).total_seconds())
                elif previous == "bot":
                    metrics.handoffs.labels("agent_took").inc()
                handoff.agent_id, handoff.claimed_at = assign, now
                handoff.pending_since = handoff.pending_since if previous == "pending" else now
            if survey:
                handoff.survey = "asked"
            session.add(context.event(conversation_id, "status", previous, to, staff.actor, reason))
        log.info("handoff.status", conversation_id=conversation_id, status=to, previous=previous, actor=staff.actor)
        return previous
