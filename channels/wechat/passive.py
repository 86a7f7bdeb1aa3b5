"""WeChat's five-second rule, and the account's events, on the gateway's delivery core.

WeChat waits 5 seconds for the webhook's answer (then retries, three times in all). The webhook stores the message,
starts its turn and waits up to WECHAT_PASSIVE_REPLY_SECONDS: when the bot's replies arrive in time (and fit one
text), they are claimed from the outbox and answered passively, in the webhook's own response; otherwise the webhook
answers "success" and the outbox sends them as customer-service messages. A reply is either claimed or sent by the
outbox, never both: the claim runs under the outbox's expand lock and only takes replies the outbox has not rendered
yet, so a retried push (answered "success", a duplicate) never yields a second reply.

Events: subscribe clears a WeChat opt-out and is answered with the welcome and the menu as numbered choices; the
LOCATION auto-report and VIEW clicks are stored for context but not answered; unsubscribe is the outbox's vendor
opt-out (its own hook).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import func, select, update

from channels.wechat.connector import MAX_TEXT_BYTES, WeChatConnector, utf8_len
from gateway.coordination import Coordination, LockTimeout
from gateway.message import OutboundMessage
from gateway.metrics import Metrics
from gateway.pipeline import Intercept, Pipeline
from gateway.storage import Conversation, Database, Message

if TYPE_CHECKING:
    from gateway.outbox import Outbox

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
    db: Database
    coordination: Coordination
    metrics: Metrics
    wake_outbox: Callable[[], None]
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

    async def deliver(self, conversation: Conversation, messages: list[Message]) -> None:
        """The pipeline's deliverer for WeChat: a waiting webhook takes its turn's replies, the outbox the rest."""
        reply_to = {m.reply_to_id for m in messages}
        turn = reply_to.pop() if len(reply_to) == 1 else None
        waiter = self._waiters.get(turn) if turn is not None else None
        if waiter is None or waiter.claiming or waiter.future.done():
            self.wake_outbox()
            return
        language = conversation.language or "zh"
        text = "\n\n".join(
            t for t in (self.connector.text_of(OutboundMessage.from_payload(m.payload or {}), language)
                        for m in messages) if t
        )
        if not text or utf8_len(text) > MAX_TEXT_BYTES:
            waiter.future.set_result(None)  # several parts: customer-service messages, in order
            self.wake_outbox()
            return
        left = waiter.deadline - asyncio.get_running_loop().time()
        if left < 0.05:
            waiter.future.set_result(None)
            self.wake_outbox()
            return
        waiter.claiming = True
        try:
            claimed = await self._claim([m.id for m in messages], min(left, CLAIM_LOCK_WAIT_SECONDS))
        except Exception as exc:  # the outbox still has them: nothing is lost
            log.warning("wechat.claim_failed", error=repr(exc))
            claimed = False
        waiter.future.set_result(text if claimed else None)
        if claimed:
            for message in messages:
                self.metrics.outbound_messages.labels(message.channel, f"{message.sender}:sent").inc()
                await self.coordination.publish(
                    f"conversation:{conversation.id}",
                    {"type": "delivery", "conversation_id": conversation.id, "message_id": str(message.id),
                     "state": "sent", "error": None},
                )
        else:
            self.wake_outbox()

    async def _claim(self, ids: list[int], wait_seconds: float) -> bool:
        """Mark the replies sent (passively) if the outbox has not taken them: under its expand lock."""
        from gateway.outbox import OutboxRow

        try:
            async with self.coordination.lock("outbox:expand", hold_seconds=30, wait_seconds=wait_seconds):
                async with self.db.sessions() as session, session.begin():
                    rendered = (await session.execute(
                        select(func.count()).select_from(OutboxRow).where(OutboxRow.message_id.in_(ids))
                    )).scalar_one()
                    queued = (await session.execute(
                        select(func.count()).select_from(Message)
                        .where(Message.id.in_(ids), Message.delivery_state == "queued")
                    )).scalar_one()
                    if rendered or queued != len(ids):
                        return False
                    await session.execute(
                        update(Message).where(Message.id.in_(ids)).values(delivery_state="sent")
                    )
        except LockTimeout:
            return False
        return True


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
            from gateway.outbox import set_opt_out

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


def install(connector: WeChatConnector, pipeline: Pipeline, outbox: Outbox) -> PassiveReplies:
    """Wire WeChat into the delivery core (after `outbox.install`): passive replies and the event hook."""
    passive = PassiveReplies(connector, outbox.db, outbox.coordination, outbox.metrics, outbox.wake)
    pipeline.deliverers[connector.name] = passive.deliver  # instead of the outbox's: the webhook may take them
    pipeline.turn_hooks.append(WeChatEventHook(connector, outbox.db))
    connector.passive = passive
    return passive
