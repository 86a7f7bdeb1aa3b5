"""A reply of "2" picks the second button: on a channel without buttons (SMS, e-mail, WeChat) the bot's and agents'
buttons are shown as a numbered list (gateway/rendering.py), and the citizen's answer by number, Chinese numeral or
title is mapped back to that button's payload before the bot sees it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import structlog
from sqlalchemy import select

from gateway.hooks import Intercept
from gateway.message import Button, Capabilities, OutboundMessage
from gateway.rendering import match_reply
from gateway.storage import Conversation, Database, Message

log = structlog.get_logger(__name__)


@dataclass
class NumberedReplies:
    """Run before the bot: "2" / "二" / a button's title picks that button of the last bot or agent message."""

    db: Database
    capabilities: Mapping[str, Capabilities]  # of the channels served

    async def __call__(self, conversation: Conversation, message: Message, text: str) -> Intercept | None:
        capabilities = self.capabilities.get(message.channel)
        if capabilities is None or not capabilities.push or (message.payload or {}).get("reply_payload"):
            return None
        index = ((message.payload or {}).get("metadata") or {}).get("button_index")
        if capabilities.buttons and not index:
            return None  # buttons pressed on such channels carry their payload
        buttons = await last_buttons(self.db, conversation.id, message.id)
        payload = match_reply(str(index) if index else text, buttons)
        if payload is None:
            return None
        log.info("reply.mapped", message_id=message.id, payload=payload)
        return Intercept(text=payload)


async def last_buttons(db: Database, conversation_id: str, before_message_id: int) -> Sequence[Button]:
    """The buttons of the latest bot/agent message before this one, if no citizen message came in between."""
    async with db.sessions() as session:
        recent = (
            await session.execute(
                select(Message)
                .where(Message.conversation_id == conversation_id, Message.id < before_message_id)
                .order_by(Message.id.desc())
                .limit(10)
            )
        ).scalars().all()
    for earlier in recent:
        if earlier.direction == "in":
            return ()
        buttons = (earlier.payload or {}).get("buttons")
        if buttons:
            return OutboundMessage.from_payload(earlier.payload).buttons
    return ()
