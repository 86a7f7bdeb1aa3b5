"""WeChat's five-second rule, and the account's events, on the gateway's delivery core.

WeChat waits 5 seconds for the webhook's answer (then retries, three times in all). The webhook stores the message,
starts its turn and waits up to WECHAT_PASSIVE_REPLY_SECONDS: when the bot's replies arrive in time (and fit one
text), they are claimed from the outbox and answered passively, in the webhook's own response; otherwise the webhook
answers "success" and the outbox sends them as customer-service messages. A reply is either claimed or sent by the
outbox, never both: the claim runs under the outbox's expand lock and only takes replies the outbox has not rendered
yet, so a retried push (answered "success", a duplicate) never yields a second reply.

Events: subscribe clears a WeChat opt-out and is answered with the welcome and the menu as numbered choices; the
LOCATION auto-report and VIEW clicks are stored for context but not answered; unsubscribe is the vendor's opt-out
(gateway/optouts.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from channels.wechat.connector import MAX_TEXT_BYTES, WeChatConnector, utf8_len
from gateway import topics
from gateway.coordination import Coordination
from gateway.hooks import Intercept
from gateway.message import OutboundMessage
from gateway.metrics import Metrics
from gateway.optouts import set_opt_out
from gateway.storage import Conversation, Database, Message

log = structlog.get_logger(__name__)

# A claim waits this long at most for the outbox's expand lock (and never past the webhook's budget): a passive
# reply that reached WeChat after its 5 seconds would be lost, the retry being answered "success".
CLAIM_LOCK_WAIT_SECONDS = 0.5


@dataclass
class _Waiter:
    future: asyncio.Future[str | None]
    deadline: float = 0.0  # loop time after which the webhook no longer waits
    claiming: bool = False  # the deliverer is claiming the replies: the webhook waits for the outcome


@dataclass
class PassiveReplies:
    connector: WeChatConnector
    coordination: Coordination
    metrics: Metrics
    # Takes replies away from the outbox (gateway/outbox: claim_unsent); the ones not taken, it sends.
    claim_unsent: Callable[[list[int], float], Awaitable[bool]]
    _waiters: dict[int, _Waiter] = field(default_factory=dict)

    def expect(self, message_id: int, budget_seconds: float) -> _Waiter:
        """Register before the turn starts, so replies that come at once are not missed."""
        loop = asyncio.get_running_loop()
        waiter = _Waiter(loop.create_future(), loop.time() + max(budget_seconds, 0.0))
        self._waiters[message_id] = waiter
        return waiter

    async def wait(self, message_id: int, waiter: _Waiter) -> str | None:
        """The passive reply's text if the turn's replies were claimed within the budget, else None."""
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
        """The turn ran (or another worker ran it): with no replies for us, the webhook answers "success" now."""
        waiter = self._waiters.get(message_id)
        if waiter is not None and not waiter.claiming and not waiter.future.done():
            waiter.future.set_result(None)

    async def deliver(self, conversation: Conversation, messages: list[Message]) -> bool:
        """WeChat's deliverer: a waiting webhook takes its turn's replies (True); the outbox sends the rest."""
        reply_to = {m.reply_to_id for m in messages}
        turn = reply_to.pop() if len(reply_to) == 1 else None
        waiter = self._waiters.get(turn) if turn is not None else None
        if waiter is None or waiter.claiming or waiter.future.done():
            return False
        language = conversation.language or "zh"
        text = "\n\n".join(
            t for t in (self.connector.text_of(OutboundMessage.from_payload(m.payload or {}), language)
                        for m in messages) if t
        )
        if not text or utf8_len(text) > MAX_TEXT_BYTES:
            waiter.future.set_result(None)  # several parts: customer-service messages, in order
            return False
        left = waiter.deadline - asyncio.get_running_loop().time()
        if left < 0.05:
            waiter.future.set_result(None)
            return False
        waiter.claiming = True
        try:
            claimed = await self.claim_unsent([m.id for m in messages], min(left, CLAIM_LOCK_WAIT_SECONDS))
        except Exception as exc:  # the outbox still has them: nothing is lost
            log.warning("wechat.claim_failed", error=repr(exc))
            claimed = False
        waiter.future.set_result(text if claimed else None)
        if claimed:
            for message in messages:
                self.metrics.outbound_messages.labels(message.channel, f"{message.sender}:sent").inc()
                await self.coordination.publish(
                    topics.conversation(conversation.id),
                    {"type": "delivery", "conversation_id": conversation.id, "message_id": str(message.id),
                     "state": "sent", "error": None},
                )
        return claimed


@dataclass
class WeChatEventHook:
    """Before the bot: subscribe → welcome with the menu; silent events (location report, VIEW) → stored only."""

    connector: WeChatConnector
    db: Database

    async def __call__(self, conversation: Conversation, message: Message, text: str) -> Intercept | None:
        if message.channel != self.connector.name:
            return None
        metadata = (message.payload or {}).get("metadata") or {}
        if metadata.get("silent"):
            return Intercept(replies=[])
        if metadata.get("event") in ("subscribe", "subscribe_scan"):
            await set_opt_out(self.db, conversation.contact_id, self.connector.name, False, "vendor")
            return Intercept(replies=[self.welcome(conversation.language or "zh")])
        return None

    def welcome(self, language: str) -> OutboundMessage:
        menu = self.connector.menu
        if menu is None:
            return OutboundMessage(text=WELCOME.get(language, WELCOME["zh"]))
        return OutboundMessage(text=menu.welcome_text(language) or WELCOME["zh"], buttons=menu.welcome_buttons())


WELCOME = {"zh": "您好，欢迎关注滨江市政务服务！请直接输入您的问题。",
           "en": "Welcome to Binjiang City services! Type your question."}
