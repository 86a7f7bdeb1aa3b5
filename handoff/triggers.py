"""When a conversation goes to people, and what the citizen's messages do meanwhile: the pipeline's hooks.

After a bot turn, in its transaction: a request for a person, the bot not understanding twice in a row, or an
urgent report or complaint just filed puts the conversation in a queue. Before a turn, unseen by the bot: the
answer to the satisfaction survey, the out-of-hours choices (leave a message, file a work order), unread counts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.api_types import ascii_int
from gateway.clock import utc_or_none
from gateway.engine import BotTurn
from gateway.hooks import Intercept
from gateway.message import OutboundMessage
from gateway.rendering import match_reply
from gateway.storage import Conversation, Message, earlier_inbound_payload
from handoff import texts
from handoff.context import PERSON_STATUSES, HandoffContext
from handoff.models import CsatScore, Handoff
from handoff.person_request import asks_for_a_person
from handoff.queue import HandoffQueue
from kb_retrieval.store import ArticleRow

log = structlog.get_logger(__name__)

NOT_UNDERSTOOD_INTENTS = ("nlu_fallback", "out_of_scope")
URGENT = "an urgent report or complaint was filed"
REQUEST_PERSON = "/request_human"  # what the bot hears when the words ask for a person
_SCORE = re.compile(r"^\s*([1-5])\s*(分|星|/5)?\s*$")


def survey_score(text: str) -> int | None:
    """The 1–5 answer in a reply: the button's payload, "5", "5分", "五" …"""
    if text.startswith(texts.CSAT_PREFIX):
        digits = text[len(texts.CSAT_PREFIX):]
        score = ascii_int(digits)
        return score if score is not None and 1 <= score <= 5 else None
    match = _SCORE.match(text)
    if match:
        return int(match.group(1))
    payload = match_reply(text, texts.survey("zh").buttons)
    return int(payload[len(texts.CSAT_PREFIX):]) if payload else None


class HandoffTriggers:
    def __init__(self, context: HandoffContext, queue: HandoffQueue) -> None:
        self.context = context
        self.queue = queue

    # ---- after the bot ------------------------------------------------------------------------------------------

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
                reason = URGENT
                conversation.status = "pending"
        if conversation.status != "pending" or previous in PERSON_STATUSES:
            return []
        trigger = ("dead_letter" if turn.latest_action == "dead_letter"
                   else "request_human" if turn.slots_set.get("handoff_requested")
                   else "urgent" if reason == URGENT else "not_understood")
        self.context.pipeline.metrics.handoffs.labels(trigger).inc()
        topic = urgent_department or await self._topic_department(session, conversation)
        department = await self.queue.staffed(session, topic)
        return await self.queue.enter(session, conversation, handoff, previous, "bot", reason or "handoff",
                                      department=department)

    def _not_understood(self, intent: str | None, confidence: float | None, kb_articles: Any = None) -> bool:
        """The bot missed this turn: the NLU gave up or was unsure, and the knowledge base did not answer it
        instead (an unsure or "out of scope" turn goes to the KB, which may still answer: bot/actions/kb.py)."""
        if kb_articles:
            return False
        if intent in NOT_UNDERSTOOD_INTENTS:
            return True
        return confidence is not None and confidence < self.context.settings.fallback_confidence

    async def _urgent_order_department(self, conversation: Conversation, turn: BotTurn) -> str | None:
        """The department of a report or complaint this turn filed that the routing rules mark urgent (a danger to
        people): a person follows it up at once. Only an order just filed from this conversation counts, not a
        status query about an old one."""
        number = turn.slots_set.get("work_order_id")
        work_orders, clock = self.context.work_orders, self.context.clock
        if not number or work_orders is None:
            return None
        try:
            order = await work_orders.get(str(number))
        except Exception:  # noqa: BLE001 - an unknown number or the CRM away never breaks the turn
            return None
        just_filed = clock() - (utc_or_none(order.created_at) or clock()) < timedelta(minutes=10)
        if (order.priority == "urgent" and order.category in ("complaint", "report") and just_filed
                and order.conversation_id == conversation.id):
            return str(order.department)
        return None

    @staticmethod
    async def _topic_department(session: AsyncSession, conversation: Conversation) -> str | None:
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

    # ---- before the bot -----------------------------------------------------------------------------------------

    async def before_turn(self, conversation: Conversation, message: Message, text: str) -> Intercept | None:
        """Survey answers, the out-of-hours choices, unread counts (the bot never sees these); a request for a
        person in words the NLU may not know is handed to the bot as the request itself."""
        intercept = await self._before_turn(conversation, message, text)
        if intercept is None and conversation.status == "bot" and asks_for_a_person(text):
            log.info("handoff.person_asked", conversation_id=conversation.id)
            return Intercept(text=REQUEST_PERSON)
        return intercept

    async def _before_turn(self, conversation: Conversation, message: Message, text: str) -> Intercept | None:
        context = self.context
        publish: dict[str, Any] | None = None
        reply: OutboundMessage | None = None
        async with context.db.sessions() as session, session.begin():
            handoff = await session.get(Handoff, conversation.id)
            if handoff is None:
                return None
            if handoff.last_status != conversation.status:
                # The pipeline moved it (resolved → bot when the citizen wrote again): keep the history whole.
                session.add(context.event(conversation.id, "status", handoff.last_status, conversation.status,
                                          "citizen", "the citizen wrote again"))
                handoff.last_status = conversation.status
            if handoff.survey == "asked":
                handoff.survey = None  # asked once: any other reply means the citizen moved on
                # A sender the channel could not prove (spoofed mail) does not score an agent.
                verified = (message.payload or {}).get("sender_verified", True)
                score = survey_score(text) if verified else None
                if score is not None:
                    session.add(CsatScore(conversation_id=conversation.id, agent_id=handoff.agent_id, score=score,
                                          created_at=context.clock()))
                    session.add(context.event(conversation.id, "csat", None, None, "citizen", None, {"score": score}))
                    log.info("handoff.csat", conversation_id=conversation.id, score=score)
                    context.pipeline.metrics.csat_scores.labels(str(score)).inc()
                    publish = {"type": "csat", "conversation_id": conversation.id, "score": score}
                    reply = texts.survey_thanks(conversation.language, score)
            choice = text if conversation.status == "pending" else None
            if choice == texts.FILE_WORK_ORDER:
                await session.execute(update(Conversation).where(Conversation.id == conversation.id,
                                                                 Conversation.status == "pending")
                                      .values(status="bot"))
                session.add(context.event(conversation.id, "status", "pending", "bot", "citizen",
                                          "the citizen chose to file a work order"))
                handoff.last_status, handoff.agent_id = "bot", None
                conversation.status = "bot"
            elif conversation.status in PERSON_STATUSES:
                handoff.unread += 1
                publish = {"type": "unread", "conversation_id": conversation.id, "unread": handoff.unread}
        if publish is not None:
            await context.publish(publish)
        if reply is not None:
            return Intercept(replies=[reply])
        if choice == texts.FILE_WORK_ORDER:
            await context.publish_status(conversation.id, "bot", "pending", "citizen", "work order")
            return Intercept(text=texts.WORK_ORDER_INTENT)
        if choice == texts.LEAVE_MESSAGE:
            return Intercept(replies=[texts.message_taken(conversation.language)])
        return None
