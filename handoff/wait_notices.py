"""The second word to a waiting citizen: a background loop tells those who have waited longer than the setting where
they stand in the queue, once per handoff and only while people are at their desks.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import CursorResult, select, update

from gateway.storage import Conversation
from handoff import texts
from handoff.context import HandoffContext
from handoff.models import Handoff
from handoff.queue import HandoffQueue

log = structlog.get_logger(__name__)


class WaitNotices:
    def __init__(self, context: HandoffContext, queue: HandoffQueue) -> None:
        self.context = context
        self.queue = queue

    async def run(self, poll_seconds: float | None = None) -> None:
        """Forever: send the notices that are due, every `poll_seconds` (by default a quarter of the wait)."""
        every = poll_seconds or max(0.5, min(30.0, self.context.settings.wait_notice_seconds / 4))
        while True:
            try:
                await self.send_due()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep the loop alive; the next round retries
                log.error("handoff.wait_notices_failed", error=repr(exc))
            await asyncio.sleep(every)

    async def send_due(self) -> int:
        """Tell every citizen waiting longer than the setting (and not yet told) their place; returns how many."""
        context = self.context
        now = context.clock()
        if not context.hours.is_open(now):
            return 0  # out of hours they were told when people are back
        cutoff = now - timedelta(seconds=context.settings.wait_notice_seconds)
        sent = 0
        async with context.db.sessions() as session:
            due = (
                await session.execute(
                    select(Handoff.conversation_id)
                    .join(Conversation, Conversation.id == Handoff.conversation_id)
                    .where(Conversation.status == "pending", Handoff.wait_notice_at.is_(None),
                           Handoff.pending_since <= cutoff)
                )
            ).scalars().all()
        for conversation_id in due:
            async with context.db.sessions() as session, session.begin():
                result: CursorResult[Any] = await session.execute(  # type: ignore[assignment]
                    update(Handoff).where(Handoff.conversation_id == conversation_id,
                                          Handoff.wait_notice_at.is_(None)).values(wait_notice_at=now)
                )
                if result.rowcount != 1:
                    continue  # another worker told them
                handoff = await session.get(Handoff, conversation_id)
                conversation = await session.get(Conversation, conversation_id)
                assert handoff is not None and conversation is not None
                position = await self.queue.position(session, handoff)
                language = conversation.language
            await context.say(conversation_id, texts.still_waiting(language, position), "system")
            sent += 1
        return sent
