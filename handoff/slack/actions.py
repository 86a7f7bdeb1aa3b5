"""What a Slack agent's clicks and replies do: the handoff service's claim, resolve and reply.

A Slack user whose e-mail matches an inbox agent acts as that agent (assignment, load and the history show the
agent); anyone else in the handoff channel acts as "<name> (Slack)".
"""

from __future__ import annotations

from collections.abc import Awaitable

from sqlalchemy import func, select

from gateway.message import OutboundMessage
from handoff.models import Agent
from handoff.service import HandoffError, HandoffService, Staff
from handoff.slack.desk import VIA_SLACK, SlackUser


class HandoffDeskActions:
    def __init__(self, handoff: HandoffService) -> None:
        self.handoff = handoff

    async def staff(self, user: SlackUser) -> Staff:
        if user.email:
            async with self.handoff.db.sessions() as session:
                agent = (await session.execute(
                    select(Agent).where(func.lower(Agent.email) == user.email.lower(), Agent.active.is_(True))
                )).scalar_one_or_none()
            if agent is not None:
                return Staff(agent.id, agent.name)
        return Staff(None, f"{user.name} (Slack)")

    async def claim(self, conversation_id: str, user: SlackUser) -> str | None:
        return await _refusal(self.handoff.claim(conversation_id, await self.staff(user)))

    async def resolve(self, conversation_id: str, user: SlackUser) -> str | None:
        return await _refusal(self.handoff.resolve(conversation_id, await self.staff(user)))

    async def reply(self, conversation_id: str, user: SlackUser, text: str) -> str | None:
        return await _refusal(self.handoff.reply(conversation_id, await self.staff(user), OutboundMessage(text=text),
                                                 via=VIA_SLACK))


async def _refusal(action: Awaitable[object]) -> str | None:
    """None when the handoff did it; else why it refused (the desk shows it to the Slack user)."""
    try:
        await action
    except HandoffError as exc:
        return str(exc) or type(exc).__name__
    return None
