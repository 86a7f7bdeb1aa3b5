"""The kinds of hook a turn runs through; which hooks run, and in which order, is set in one place: app/hooks.py.

- A turn hook runs before the bot, under the conversation's lock: it may answer the turn itself or hand the bot
  other text (opt-out keywords, "2" → a button's payload, media, contacts, the handoff's survey answers).
- A turn observer runs after the bot answered, inside the turn's transaction: it may move the conversation's
  status and add messages for the citizen (the handoff: a request for a person, the queue position).
- A reply deliverer is told first when replies for its channel were stored, and says whether it took them (WeChat
  answers passively when it can); the outbox sends what it did not take.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.engine import BotTurn
from gateway.message import OutboundMessage
from gateway.storage import Conversation, Message


@dataclass
class Intercept:
    """What a hook run before the bot decided: answer the turn itself (`replies`) or hand the bot other `text`."""

    replies: list[OutboundMessage] | None = None
    text: str | None = None


TurnHook = Callable[[Conversation, Message, str], Awaitable[Intercept | None]]
TurnObserver = Callable[[AsyncSession, Conversation, Message, BotTurn], Awaitable[list[OutboundMessage]]]
ReplyDeliverer = Callable[[Conversation, list[Message]], Awaitable[bool]]
