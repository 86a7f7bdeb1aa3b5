"""The conversation's life with people: the status machine, assignment, notices to the citizen, the survey.

    bot ──request_human / not understood twice──▶ pending ──claim──▶ open ──resolve──▶ resolved ──next message──▶ bot
     └──────────────── an agent takes it from the list ────────────────▲      │
    pending/open ──hand back──▶ bot          open ──transfer to a department──▶ pending (that department's queue)

Every change is a `conversation_events` row (who, when, why). Status changes that race (two agents claim at once,
a claim against a turn) are decided by a conditional UPDATE on `conversations.status`: one wins, the other gets
`HandoffConflict`. Agent operations also hold the conversation's coordination lock, so they never interleave with
a bot turn of the same conversation.

Events for other desks (the inbox sockets, a Slack desk) are published on the coordination topic "inbox":
`{type: "status", conversation_id, status, previous?, actor?, reason?}`, `{type: "activity", conversation_id,
status}` (a message in or out), `{type: "assign", conversation_id, agent_id, department}`, `{type: "note",
conversation_id}`, `{type: "unread", conversation_id, unread}`, `{type: "csat", conversation_id, score}` and
`{type: "agent", agent_id, online}`. A desk acts through `HandoffService` (claim, reply, resolve, hand_back,
transfer, note) with a `Staff` of its own.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.client import BotTurn
from gateway.clock import iso, utc_now, utc_or_none
from gateway.coordination import Coordination
from gateway.message import OutboundMessage
from gateway.pipeline import Intercept, Pipeline, message_view
from gateway.rendering import match_reply
from gateway.storage import ChannelIdentity, Contact, Conversation, Database, Message, earlier_inbound_payload
from handoff import texts
from handoff.agents import AgentStore
from handoff.hours import ServiceHours
from handoff.models import Agent, ConversationEvent, CsatScore, Handoff
from kb_retrieval.store import ArticleRow

if TYPE_CHECKING:
    from crm_adapter.service import WorkOrderService

log = structlog.get_logger(__name__)

PERSON_STATUSES = ("pending", "open")
NOT_UNDERSTOOD_INTENTS = ("nlu_fallback", "out_of_scope")
TOPIC = "inbox"
_SCORE = re.compile(r"^\s*([1-5])\s*(分|星|/5)?\s*$")


class HandoffError(Exception):
    """A request the status machine refuses (HTTP 404/409 with this message)."""


class HandoffConflict(HandoffError):
    """Someone else changed the conversation first (another agent claimed it …)."""


class HandoffNotFound(HandoffError):
    pass


@dataclass(frozen=True)
class Staff:
    """Who acts: an agent (id, display name) or a desk acting for one."""

    agent_id: int | None
    name: str
    role: str = "agent"

    @property
    def actor(self) -> str:
        return f"agent:{self.agent_id}" if self.agent_id is not None else self.name


@dataclass(frozen=True)
class HandoffSettings:
    default_department: str = "hotline"
    wait_notice_seconds: float = 300.0
    fallback_confidence: float = 0.3





def survey_score(text: str) -> int | None:
    """The 1–5 answer in a reply: the button's payload, "5", "5分", "五" …"""
    if text.startswith(texts.CSAT_PREFIX):
        digits = text[len(texts.CSAT_PREFIX):]
        return int(digits) if digits.isdigit() and 1 <= int(digits) <= 5 else None
    match = _SCORE.match(text)
    if match:
        return int(match.group(1))
    payload = match_reply(text, texts.survey("zh").buttons)
    return int(payload[len(texts.CSAT_PREFIX):]) if payload else None


class HandoffService:
    def __init__(self, db: Database, coordination: Coordination, pipeline: Pipeline, agents: AgentStore,
                 hours: ServiceHours, settings: HandoffSettings | None = None,
                 work_orders: WorkOrderService | None = None) -> None:
        self.db = db
        self.coordination = coordination
        self.pipeline = pipeline
        self.agents = agents
        self.hours = hours
        self.settings = settings or HandoffSettings()
        self.work_orders = work_orders
        self.clock = utc_now

    def install(self) -> None:
        """Hook into the pipeline: survey answers and inbox bookkeeping before the bot, handoffs after it."""
        self.pipeline.turn_hooks.append(self.before_turn)
        self.pipeline.turn_observers.append(self.after_turn)

    # ---- pipeline hooks ---------------------------------------------------------------------------------------------

    async def after_turn(self, session: AsyncSession, conversation: Conversation, message: Message, turn: BotTurn
                         ) -> list[OutboundMessage]:
        """In the turn's transaction: start a handoff when the bot asked for one or failed to understand twice."""
        handoff = await session.get(Handoff, conversation.id)
        previous = handoff.last_status if handoff else "bot"
        reason = (turn.slots_set.get("handoff_reason") or "the citizen asked for a person"
                  if turn.slots_set.get("handoff_requested") else None)
        if (reason is None and conversation.status == "bot"
                and self._not_understood(turn.intent, turn.confidence, turn.slots_set.get("kb_article_ids"))):
            earlier = await earlier_inbound_payload(session, conversation.id, message.id)
            meta: dict[str, Any] = (earlier or {}).get("meta") or {}
            if meta.get("intent") is not None and self._not_understood(meta.get("intent"), meta.get("confidence"),
                                                                       meta.get("kb_article_ids")):
                reason = "the bot did not understand twice in a row"
                conversation.status = "pending"
        urgent_department = None
        if reason is None and conversation.status == "bot":
            urgent_department = await self._urgent_order_department(conversation, turn)
            if urgent_department is not None:
                reason = "an urgent report or complaint was filed"
                conversation.status = "pending"
        if conversation.status != "pending" or previous in PERSON_STATUSES:
            return []
        trigger = ("dead_letter" if turn.latest_action == "dead_letter"
                   else "request_human" if turn.slots_set.get("handoff_requested")
                   else "urgent" if reason == "an urgent report or complaint was filed" else "not_understood")
        self.pipeline.metrics.handoffs.labels(trigger).inc()
        topic = urgent_department or await self._topic_department(session, conversation)
        department = await self._staffed(session, topic)
        return await self._enter_pending(session, conversation, handoff, previous, "bot", reason or "handoff",
                                         department=department)

    async def _urgent_order_department(self, conversation: Conversation, turn: BotTurn) -> str | None:
        """The department of a report or complaint this turn filed that the routing rules mark urgent (a danger to
        people): a person follows it up at once. Only an order just filed from this conversation counts, not a
        status query about an old one."""
        number = turn.slots_set.get("work_order_id")
        if not number or self.work_orders is None:
            return None
        try:
            order = await self.work_orders.get(str(number))
        except Exception:  # noqa: BLE001 - an unknown number or the CRM away never breaks the turn
            return None
        just_filed = self.clock() - (utc_or_none(order.created_at) or self.clock()) < timedelta(minutes=10)
        if (order.priority == "urgent" and order.category in ("complaint", "report") and just_filed
                and order.conversation_id == conversation.id):
            return str(order.department)
        return None

    async def _topic_department(self, session: AsyncSession, conversation: Conversation) -> str | None:
        """The department of the KB article the bot last answered with in this conversation (what it is about)."""
        metas: Sequence[dict[str, Any] | None] = (await session.execute(
            select(Message.payload).where(Message.conversation_id == conversation.id, Message.direction == "out",
                                          Message.sender == "bot")
            .order_by(Message.id.desc()).limit(10)
        )).scalars().all()
        for payload in metas:
            article_ids = ((payload or {}).get("meta") or {}).get("kb_article_ids") or []
            if article_ids:
                return (await session.execute(
                    select(ArticleRow.department).where(ArticleRow.id == str(article_ids[0]))
                )).scalar_one_or_none()
        return None

    async def _staffed(self, session: AsyncSession, department: str | None) -> str | None:
        """The department itself when some active agent works for it, else None (the default queue): a handoff must
        never wait in a queue nobody watches."""
        if not department or department == self.settings.default_department:
            return None
        agents = (await session.execute(select(Agent.departments).where(
            Agent.active.is_(True), Agent.role.in_(("agent", "supervisor"))))).scalars().all()
        return department if any(department in (d or []) for d in agents) else None

    def _not_understood(self, intent: str | None, confidence: float | None, kb_articles: Any = None) -> bool:
        """The bot missed this turn: the NLU gave up or was unsure, and the knowledge base did not answer it
        instead (an unsure or "out of scope" turn goes to the KB, which may still answer: bot/actions/kb.py)."""
        if kb_articles:
            return False
        if intent in NOT_UNDERSTOOD_INTENTS:
            return True
        return confidence is not None and confidence < self.settings.fallback_confidence

    async def before_turn(self, conversation: Conversation, message: Message, text: str) -> Intercept | None:
        """Survey answers, the out-of-hours choices, unread counts; the bot never sees these."""
        async with self.db.sessions() as session, session.begin():
            handoff = await session.get(Handoff, conversation.id)
            if handoff is None:
                return None
            if handoff.last_status != conversation.status:
                # The pipeline moved it (resolved → bot when the citizen wrote again): keep the history whole.
                session.add(self._event(conversation.id, "status", handoff.last_status, conversation.status,
                                        "citizen", "the citizen wrote again"))
                handoff.last_status = conversation.status
            if handoff.survey == "asked":
                handoff.survey = None  # asked once: any other reply means the citizen moved on
                # A sender the channel could not prove (spoofed mail) does not score an agent.
                verified = (message.payload or {}).get("sender_verified", True)
                score = survey_score(text) if verified else None
                if score is not None:
                    session.add(CsatScore(conversation_id=conversation.id, agent_id=handoff.agent_id, score=score,
                                          created_at=self.clock()))
                    session.add(self._event(conversation.id, "csat", None, None, "citizen", None, {"score": score}))
                    log.info("handoff.csat", conversation_id=conversation.id, score=score)
                    self.pipeline.metrics.csat_scores.labels(str(score)).inc()
                    publish: dict[str, Any] | None = {"type": "csat", "conversation_id": conversation.id,
                                                      "score": score}
                    reply = texts.survey_thanks(conversation.language, score)
                else:
                    publish, reply = None, None
            else:
                publish, reply = None, None
            choice = text if conversation.status == "pending" else None
            if choice == texts.FILE_WORK_ORDER:
                await session.execute(update(Conversation).where(Conversation.id == conversation.id,
                                                                 Conversation.status == "pending")
                                      .values(status="bot"))
                session.add(self._event(conversation.id, "status", "pending", "bot", "citizen",
                                        "the citizen chose to file a work order"))
                handoff.last_status, handoff.agent_id = "bot", None
                conversation.status = "bot"
            elif conversation.status in PERSON_STATUSES:
                handoff.unread += 1
                publish = {"type": "unread", "conversation_id": conversation.id, "unread": handoff.unread}
        if publish is not None:
            await self.coordination.publish(TOPIC, publish)
        if reply is not None:
            return Intercept(replies=[reply])
        if choice == texts.FILE_WORK_ORDER:
            await self._publish_status(conversation.id, "bot", "pending", "citizen", "work order")
            return Intercept(text=texts.WORK_ORDER_INTENT)
        if choice == texts.LEAVE_MESSAGE:
            return Intercept(replies=[texts.message_taken(conversation.language)])
        return None

    # ---- entering the queue -----------------------------------------------------------------------------------------

    async def _enter_pending(self, session: AsyncSession, conversation: Conversation, handoff: Handoff | None,
                             previous: str, actor: str, reason: str, department: str | None = None
                             ) -> list[OutboundMessage]:
        now = self.clock()
        if handoff is None:
            handoff = Handoff(conversation_id=conversation.id, department=self.settings.default_department,
                              unread=0, updated_at=now)
            session.add(handoff)
        handoff.department = department or self.settings.default_department
        handoff.agent_id = None
        handoff.last_status = "pending"
        handoff.pending_since, handoff.claimed_at, handoff.first_response_at = now, None, None
        handoff.wait_notice_at, handoff.survey, handoff.updated_at = None, None, now
        session.add(self._event(conversation.id, "status", previous, "pending", actor, reason))
        await session.flush()
        log.info("handoff.pending", conversation_id=conversation.id, reason=reason, department=handoff.department)
        if not self.hours.is_open(now):
            return [texts.closed(conversation.language, self.hours.next_open(now))]
        await self._auto_assign(session, handoff)
        return [texts.queued(conversation.language, await self._position(session, handoff))]

    async def _auto_assign(self, session: AsyncSession, handoff: Handoff) -> None:
        """The least-loaded online agent of the department with room left; else the conversation waits in its queue."""
        agents = (await session.execute(select(Agent).where(Agent.online.is_(True), Agent.active.is_(True),
                                                            Agent.role.in_(("agent", "supervisor"))))).scalars()
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
        session.add(self._event(handoff.conversation_id, "assign", None, None, "system",
                                "least-loaded online agent of the department",
                                {"agent_id": chosen.id, "department": handoff.department}))
        log.info("handoff.assigned", conversation_id=handoff.conversation_id, agent_id=chosen.id)

    async def _position(self, session: AsyncSession, handoff: Handoff) -> int:
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

    # ---- what agents do ----------------------------------------------------------------------------------------

    async def claim(self, conversation_id: str, staff: Staff) -> None:
        """Take the conversation (from the queue, or from the bot's live list): status open, assigned to `staff`."""
        async with self.coordination.lock(f"conversation:{conversation_id}"):
            previous = await self._move(conversation_id, ("pending", "bot", "resolved"), "open", staff,
                                        "claimed", assign=staff.agent_id)
        await self._publish_status(conversation_id, "open", previous, staff.actor, "claimed")
        await self._say(conversation_id, texts.agent_joined(await self._language(conversation_id), staff.name),
                        "system")

    async def resolve(self, conversation_id: str, staff: Staff) -> None:
        async with self.coordination.lock(f"conversation:{conversation_id}"):
            previous = await self._move(conversation_id, PERSON_STATUSES, "resolved", staff, "resolved",
                                        survey=True)
        await self._publish_status(conversation_id, "resolved", previous, staff.actor, "resolved")
        # A system message with buttons: the web chat offers the buttons of bot, agent and system messages.
        await self._say(conversation_id, texts.survey(await self._language(conversation_id)), "system")

    async def hand_back(self, conversation_id: str, staff: Staff) -> None:
        async with self.coordination.lock(f"conversation:{conversation_id}"):
            previous = await self._move(conversation_id, PERSON_STATUSES, "bot", staff, "handed back to the bot")
        await self._publish_status(conversation_id, "bot", previous, staff.actor, "handed back")
        await self._say(conversation_id, texts.handed_back(await self._language(conversation_id)), "system")

    async def transfer(self, conversation_id: str, staff: Staff, *, agent_id: int | None = None,
                       department: str | None = None) -> None:
        """To another agent (keeps the status) or to a department's queue (pending there, auto-assigned)."""
        if (agent_id is None) == (department is None):
            raise HandoffError("transfer to exactly one of: an agent, a department")
        async with self.coordination.lock(f"conversation:{conversation_id}"):
            async with self.db.sessions() as session, session.begin():
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
                    handoff.agent_id, handoff.updated_at = agent_id, self.clock()
                    session.add(self._event(conversation_id, "transfer", None, None, staff.actor,
                                            f"to {target.name}", {"agent_id": agent_id}))
                    previous = None
                else:
                    assert department is not None
                    previous = conversation.status
                    conversation.status = "pending"
                    await self._enter_pending(session, conversation, handoff, previous, staff.actor,
                                              f"transferred to {department}", department=department)
                    session.add(self._event(conversation_id, "transfer", None, None, staff.actor,
                                            f"to {department}", {"department": department}))
        await self.coordination.publish(TOPIC, {"type": "assign", "conversation_id": conversation_id,
                                                "agent_id": agent_id, "department": department})
        if previous is not None and previous != "pending":
            await self._publish_status(conversation_id, "pending", previous, staff.actor, "transferred")

    async def note(self, conversation_id: str, staff: Staff, text: str) -> None:
        """A private note: in the agents' history, never sent to the citizen."""
        if not text.strip():
            raise HandoffError("the note is empty")
        async with self.db.sessions() as session, session.begin():
            if await session.get(Conversation, conversation_id) is None:
                raise HandoffNotFound(conversation_id)
            session.add(self._event(conversation_id, "note", None, None, staff.actor, text.strip()[:4000]))
        await self.coordination.publish(TOPIC, {"type": "note", "conversation_id": conversation_id})

    async def reply(self, conversation_id: str, staff: Staff, message: OutboundMessage,
                    via: str | None = None) -> Message:
        """The agent's words on the citizen's channel, like the bot's; replying to a waiting conversation claims it."""
        if not (message.text or "").strip() and not message.image and not message.buttons:
            raise HandoffError("the reply is empty")
        async with self.db.sessions() as session:
            conversation = await session.get(Conversation, conversation_id)
            handoff = await session.get(Handoff, conversation_id)
        if conversation is None:
            raise HandoffNotFound(conversation_id)
        # An open conversation held by a desk without an inbox account (Slack) is not claimed again on each reply.
        unassigned = handoff is None or (handoff.agent_id is None and staff.agent_id is not None)
        if conversation.status != "open" or unassigned:
            await self.claim(conversation_id, staff)
        rows = await self.pipeline.say(conversation_id, [message], "agent",
                                       {"agent": staff.name, "agent_id": staff.agent_id, "conversation_status": "open",
                                        "via": via})
        async with self.db.sessions() as session, session.begin():
            handoff = await session.get(Handoff, conversation_id)
            if handoff is not None:
                handoff.unread = 0
                if handoff.first_response_at is None:
                    handoff.first_response_at = self.clock()
        await self.coordination.publish(TOPIC, {"type": "activity", "conversation_id": conversation_id,
                                                "status": "open", "via": via})
        return rows[0]

    async def mark_read(self, conversation_id: str) -> None:
        async with self.db.sessions() as session, session.begin():
            await session.execute(update(Handoff).where(Handoff.conversation_id == conversation_id,
                                                        Handoff.unread != 0).values(unread=0))

    async def _move(self, conversation_id: str, allowed: tuple[str, ...], to: str, staff: Staff, reason: str,
                    assign: int | None = None, survey: bool = False) -> str:
        """The conditional UPDATE every status change goes through; returns the previous status."""
        now = self.clock()
        async with self.db.sessions() as session, session.begin():
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
            handoff = await session.get(Handoff, conversation_id)
            if handoff is None:
                handoff = Handoff(conversation_id=conversation_id, department=self.settings.default_department,
                                  last_status="bot", unread=0, pending_since=now, updated_at=now)
                session.add(handoff)
            previous = handoff.last_status if handoff.last_status in allowed else allowed[0]
            handoff.last_status, handoff.updated_at = to, now
            if assign is not None:
                waited_since = utc_or_none(handoff.pending_since)
                if previous == "pending" and waited_since is not None:
                    self.pipeline.metrics.handoff_wait_seconds.observe((now - waited_since).total_seconds())
                elif previous == "bot":
                    self.pipeline.metrics.handoffs.labels("agent_took").inc()
                handoff.agent_id, handoff.claimed_at = assign, now
                handoff.pending_since = handoff.pending_since if previous == "pending" else now
            if survey:
                handoff.survey = "asked"
            session.add(self._event(conversation_id, "status", previous, to, staff.actor, reason))
        log.info("handoff.status", conversation_id=conversation_id, status=to, previous=previous, actor=staff.actor)
        return previous

    # ---- background: the second notice while waiting ---------------------------------------------------------

    async def run_background(self, poll_seconds: float | None = None) -> None:
        """Forever: tell citizens who have waited longer than the setting where they stand (once per handoff)."""
        every = poll_seconds or max(0.5, min(30.0, self.settings.wait_notice_seconds / 4))
        while True:
            try:
                await self.send_wait_notices()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep the loop alive; the next round retries
                log.error("handoff.wait_notices_failed", error=repr(exc))
            await asyncio.sleep(every)

    async def send_wait_notices(self) -> int:
        now = self.clock()
        if not self.hours.is_open(now):
            return 0  # out of hours they were told when people are back
        cutoff = now - timedelta(seconds=self.settings.wait_notice_seconds)
        sent = 0
        async with self.db.sessions() as session:
            due = (
                await session.execute(
                    select(Handoff.conversation_id)
                    .join(Conversation, Conversation.id == Handoff.conversation_id)
                    .where(Conversation.status == "pending", Handoff.wait_notice_at.is_(None),
                           Handoff.pending_since <= cutoff)
                )
            ).scalars().all()
        for conversation_id in due:
            async with self.db.sessions() as session, session.begin():
                result: CursorResult[Any] = await session.execute(  # type: ignore[assignment]
                    update(Handoff).where(Handoff.conversation_id == conversation_id,
                                          Handoff.wait_notice_at.is_(None)).values(wait_notice_at=now)
                )
                if result.rowcount != 1:
                    continue  # another worker told them
                handoff = await session.get(Handoff, conversation_id)
                conversation = await session.get(Conversation, conversation_id)
                assert handoff is not None and conversation is not None
                position = await self._position(session, handoff)
                language = conversation.language
            await self._say(conversation_id, texts.still_waiting(language, position), "system")
            sent += 1
        return sent

    # ---- reading: the list, one conversation, the queues ----------------------------------------------------------

    def scope(self, staff_departments: list[str] | tuple[str, ...], sees_all: bool) -> tuple[str, ...] | None:
        """The departments whose conversations a member of staff may see (None: all, for admins). Staff with no
        department work the default queue."""
        if sees_all:
            return None
        return tuple(staff_departments) or (self.settings.default_department,)

    async def department_of(self, conversation_id: str) -> str | None:
        """The queue a conversation belongs to (the default one before any handoff); None: no such conversation."""
        async with self.db.sessions() as session:
            row = (await session.execute(
                select(Conversation.id, Handoff.department)
                .outerjoin(Handoff, Handoff.conversation_id == Conversation.id)
                .where(Conversation.id == conversation_id)
            )).first()
        if row is None:
            return None
        return row.department or self.settings.default_department

    async def list(self, *, status: tuple[str, ...] = PERSON_STATUSES, channel: str | None = None,
                   department: str | None = None, agent_id: int | None = None, unassigned: bool = False,
                   limit: int = 100, departments: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        """Conversations for the inbox list, newest activity first, with waiting time and unread counts;
        `departments`: only those of these queues (None: every queue)."""
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
            queue = func.coalesce(Handoff.department, self.settings.default_department)
            query = query.where(queue.in_(departments))
        if agent_id is not None:
            query = query.where(Handoff.agent_id == agent_id)
        if unassigned:
            query = query.where(Handoff.agent_id.is_(None))
        now = self.clock()
        async with self.db.sessions() as session:
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
                "id": conversation.id,
                "status": conversation.status,
                "channel": conversation.channel,
                "language": conversation.language,
                "contact_name": display_name,
                "department": handoff.department if handoff else None,
                "agent_id": handoff.agent_id if handoff else None,
                "agent_name": agent_name,
                "unread": handoff.unread if handoff else 0,
                "waiting_seconds": waiting,
                "pending_since": iso(pending_since),
                "last_activity_at": iso(conversation.last_activity_at),
                "last_message": {"from": preview.sender, "text": (preview.original_text or preview.text or "")[:140]}
                if preview else None,
            })
        return items

    async def detail(self, conversation_id: str) -> dict[str, Any]:
        """The conversation view: the whole history with events and notes, and the contact panel."""
        async with self.db.sessions() as session:
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
        if self.work_orders is not None:
            from crm_adapter.backend import OrderFilter

            try:
                found = await self.work_orders.find(OrderFilter(contact_id=conversation.contact_id, limit=20))
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
                "actor": e.actor, "actor_name": self._actor_name(e.actor, agent_names), "reason": e.reason,
                "data": e.data, "created_at": iso(e.created_at),
            })
        history.sort(key=lambda item: item["created_at"] or "")
        return {
            "id": conversation.id,
            "status": conversation.status,
            "channel": conversation.channel,
            "language": conversation.language,
            "department": handoff.department if handoff else None,
            "agent_id": handoff.agent_id if handoff else None,
            "agent_name": agent_names.get(handoff.agent_id) if handoff and handoff.agent_id else None,
            "pending_since": iso(handoff.pending_since) if handoff else None,
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

    @staticmethod
    def _actor_name(actor: str, names: dict[int, str]) -> str:
        if actor.startswith("agent:") and actor[6:].isdigit():
            return names.get(int(actor[6:]), actor)
        return actor

    async def stats(self) -> dict[str, Any]:
        """The supervisor's view: waiting, open per agent, longest wait, first-response time and CSAT of the day."""
        now = self.clock()
        local_midnight = now.astimezone(self.hours.zone).replace(hour=0, minute=0, second=0, microsecond=0)
        async with self.db.sessions() as session:
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
                .where(Agent.role.in_(("agent", "supervisor")))
                .group_by(Agent.id, Agent.name, Agent.online, Agent.capacity).order_by(Agent.name)
            )).all()
            responded = (await session.execute(
                select(Handoff.pending_since, Handoff.first_response_at)
                .where(Handoff.first_response_at >= local_midnight, Handoff.pending_since.is_not(None))
            )).all()
            csat = (await session.execute(
                select(func.count(), func.avg(CsatScore.score)).where(CsatScore.created_at >= local_midnight)
            )).one()
        oldest = [utc_or_none(row[2]) for row in waiting if row[2] is not None]
        longest = max(((now - o).total_seconds() for o in oldest if o), default=None)
        first = [(utc_or_none(b) - utc_or_none(a)).total_seconds() for a, b in responded if a and b]  # type: ignore[operator]
        return {
            "waiting": sum(int(row[1]) for row in waiting),
            "waiting_by_department": {row[0]: int(row[1]) for row in waiting},
            "longest_wait_seconds": longest,
            "open_per_agent": [{"agent_id": r[0], "name": r[1], "online": r[2], "capacity": r[3], "open": int(r[4])}
                               for r in per_agent],
            "first_response_seconds_avg": sum(first) / len(first) if first else None,
            "csat_today": {"count": int(csat[0]), "average": float(csat[1]) if csat[1] is not None else None},
        }

    # ---- helpers ---------------------------------------------------------------------------------------------

    def _event(self, conversation_id: str, kind: str, from_status: str | None, to_status: str | None, actor: str,
               reason: str | None, data: dict[str, Any] | None = None) -> ConversationEvent:
        return ConversationEvent(conversation_id=conversation_id, kind=kind, from_status=from_status,
                                 to_status=to_status, actor=actor, reason=reason, data=data or {},
                                 created_at=self.clock())

    async def _publish_status(self, conversation_id: str, status: str, previous: str | None, actor: str,
                              reason: str) -> None:
        await self.coordination.publish(TOPIC, {"type": "status", "conversation_id": conversation_id,
                                                "status": status, "previous": previous, "actor": actor,
                                                "reason": reason})

    async def _language(self, conversation_id: str) -> str:
        async with self.db.sessions() as session:
            conversation = await session.get(Conversation, conversation_id)
        return conversation.language if conversation else "zh"

    async def _say(self, conversation_id: str, message: OutboundMessage, sender: str) -> None:
        try:
            await self.pipeline.say(conversation_id, [message], sender)
        except LookupError:  # a conversation with no inbound message (made by hand): nobody to tell
            log.info("handoff.nobody_to_tell", conversation_id=conversation_id)
