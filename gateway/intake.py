"""The intake: the gateway as a channel's routes and workers see it (the `Intake` protocol of gateway/connectors.py).

A webhook verifies the vendor's request, parses it, hands the messages here (stored durably, deduplicated per
sender) and acknowledges; the turns run soon after, in order, in the background. Channels that answer in the HTTP
response (REST) wait for the turn; the web chat reads history and follows its conversation's live events.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Any

from sqlalchemy import select

from gateway import topics
from gateway.coordination import Coordination, Subscription
from gateway.message import InboundMessage, OutboundMessage
from gateway.metrics import Metrics
from gateway.outbox import Outbox
from gateway.pipeline import Pipeline, Received, TurnOutcome
from gateway.storage import ChannelIdentity, Conversation, Message

Spawn = Callable[[Coroutine[Any, Any, Any], str], "asyncio.Task[Any]"]


class GatewayIntake:
    def __init__(self, pipeline: Pipeline, outbox: Outbox, coordination: Coordination, metrics: Metrics,
                 spawn: Spawn) -> None:
        self.pipeline = pipeline
        self.outbox = outbox
        self.coordination = coordination
        self.metrics = metrics
        self._spawn = spawn

    async def receive(self, inbound: InboundMessage) -> Received:
        return await self.pipeline.receive(inbound)

    def process_soon(self, conversation_id: str, name: str) -> None:
        self._spawn(self.pipeline.process(conversation_id), name)

    async def process(self, conversation_id: str) -> None:
        await self.pipeline.process(conversation_id)

    def run_soon(self, work: Coroutine[Any, Any, Any], name: str) -> None:
        self._spawn(work, name)

    async def take(self, inbound: InboundMessage, name: str) -> Received:
        received = await self.pipeline.receive(inbound)
        if not received.duplicate:  # a redelivery was already handed to processing (or to the recovery worker)
            self.process_soon(received.conversation_id, name)
        return received

    async def handle(self, inbound: InboundMessage) -> TurnOutcome:
        return await self.pipeline.handle(inbound)

    async def receipt(self, channel: str, external_id: str, state: str, error: str | None = None) -> bool:
        return await self.outbox.receipt(channel, external_id, state, error)

    async def claim_unsent(self, message_ids: list[int], wait_seconds: float) -> bool:
        return await self.outbox.claim_unsent(message_ids, wait_seconds)

    async def conversation_of(self, channel: str, channel_account: str, external_user_id: str) -> str | None:
        """The newest conversation of this identity, if it ever wrote."""
        async with self.pipeline.db.sessions() as session:
            found: str | None = (
                await session.execute(
                    select(Conversation.id)
                    .join(ChannelIdentity, ChannelIdentity.id == Conversation.identity_id)
                    .where(
                        ChannelIdentity.channel == channel,
                        ChannelIdentity.channel_account == channel_account,
                        ChannelIdentity.external_user_id == external_user_id,
                    )
                    .order_by(Conversation.last_activity_at.desc())
                    .limit(1)
                )
            ).scalar_one_or_none()
        return found

    async def conversation_status(self, conversation_id: str) -> str | None:
        async with self.pipeline.db.sessions() as session:
            conversation = await session.get(Conversation, conversation_id)
        return conversation.status if conversation is not None else None

    async def say(self, conversation_id: str, messages: list[OutboundMessage], sender: str) -> list[Message]:
        return await self.pipeline.say(conversation_id, messages, sender)

    async def history(self, conversation_id: str) -> list[Message]:
        return await self.pipeline.history(conversation_id)

    def follow(self, conversation_id: str) -> AbstractAsyncContextManager[Subscription]:
        return self.coordination.subscribe(topics.conversation(conversation_id))

    async def allow(self, key: str, limit: int, window_seconds: float) -> bool:
        return await self.coordination.allow(key, limit, window_seconds)
