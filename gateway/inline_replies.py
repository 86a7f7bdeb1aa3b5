"""Replies answered in the webhook's own response: WeChat's passive reply, a phone call's TwiML.

Such a channel pushes too (the outbox sends what the webhook could not answer: customer-service messages, texts
to a caller), so every reply goes exactly one way. The webhook registers its turn before the turn starts
(`expect`), the turn runs, and when its replies are stored the channel's deliverer (`deliver`) claims them from the
outbox for the waiting webhook; the claim runs under the outbox's expand lock and only takes replies the outbox has
not rendered yet. A webhook whose budget ran out, or replies the channel cannot answer inline (`fits` says no), go
to the outbox. A retried webhook finds no waiter and never gets a second claim.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from gateway import topics
from gateway.coordination import Coordination
from gateway.metrics import Metrics
from gateway.storage import Conversation, Message

log = structlog.get_logger(__name__)

# A claim waits this long at most for the outbox's expand lock (and never past the webhook's budget): an inline
# reply that reached the vendor after its deadline would be lost.
CLAIM_LOCK_WAIT_SECONDS = 0.5


@dataclass
class Claimed:
    """What a waiting webhook got: its turn's replies, and the conversation's status once they were stored."""

    replies: list[Message]
    status: str
    language: str


@dataclass
class Waiter:
    future: asyncio.Future[Claimed | None]
    deadline: float = 0.0  # loop time after which the webhook no longer waits
    claiming: bool = False  # the deliverer is claiming the replies: the webhook waits for the outcome


@dataclass
class InlineReplies:
    coordination: Coordination
    metrics: Metrics
    # Takes replies away from the outbox (gateway/outbox: claim_unsent); the ones not taken, it sends.
    claim_unsent: Callable[[list[int], float], Awaitable[bool]]
    # Whether these replies can be answered inline at all (WeChat: one text within 2048 bytes).
    fits: Callable[[Conversation, list[Message]], bool] = lambda _conversation, _replies: True
    _waiters: dict[int, Waiter] = field(default_factory=dict)

    def expect(self, message_id: int, budget_seconds: float) -> Waiter:
        """Register before the turn starts, so replies that come at once are not missed."""
        loop = asyncio.get_running_loop()
        waiter = Waiter(loop.create_future(), loop.time() + max(budget_seconds, 0.0))
        self._waiters[message_id] = waiter
        return waiter

    async def wait(self, message_id: int, waiter: Waiter) -> Claimed | None:
        """The turn's replies if they were claimed within the budget, else None (the outbox has them, or none came)."""
        try:
            budget = waiter.deadline - asyncio.get_running_loop().time()
            await asyncio.wait_for(asyncio.shield(waiter.future), max(budget, 0.0))
        except TimeoutError:
            if waiter.claiming:  # a claim under way is one database round trip: its outcome decides
                await waiter.future
        finally:
            # Unregistered: replies that come later find no waiter and go to the outbox.
            self._waiters.pop(message_id, None)
        return waiter.future.result() if waiter.future.done() else None

    def turn_finished(self, message_id: int) -> None:
        """The turn ran (or another worker ran it): with no replies claimed, the webhook answers without them now."""
        waiter = self._waiters.get(message_id)
        if waiter is not None and not waiter.claiming and not waiter.future.done():
            waiter.future.set_result(None)

    async def deliver(self, conversation: Conversation, messages: list[Message]) -> bool:
        """The channel's deliverer: a waiting webhook takes its turn's replies (True); the outbox sends the rest."""
        reply_to = {m.reply_to_id for m in messages}
        turn = reply_to.pop() if len(reply_to) == 1 else None
        waiter = self._waiters.get(turn) if turn is not None else None
        if waiter is None or waiter.claiming or waiter.future.done():
            return False
        if not self.fits(conversation, messages):
            waiter.future.set_result(None)  # the outbox sends them, in order
            return False
        left = waiter.deadline - asyncio.get_running_loop().time()
        if left < 0.05:
            waiter.future.set_result(None)
            return False
        waiter.claiming = True
        try:
            claimed = await self.claim_unsent([m.id for m in messages], min(left, CLAIM_LOCK_WAIT_SECONDS))
        except Exception as exc:  # the outbox still has them: nothing is lost
            log.warning("inline_replies.claim_failed", error=repr(exc))
            claimed = False
        waiter.future.set_result(
            Claimed(messages, conversation.status, conversation.language or "zh") if claimed else None
        )
        if claimed:
            for message in messages:
                self.metrics.outbound_messages.labels(message.channel, f"{message.sender}:sent").inc()
                await self.coordination.publish(
                    topics.conversation(conversation.id),
                    {"type": "delivery", "conversation_id": conversation.id, "message_id": str(message.id),
                     "state": "sent", "error": None},
                )
        return claimed
