"""WeChat's five-second rule, and the account's events, on the gateway's delivery core.

WeChat waits 5 seconds for the webhook's answer (then retries, three times in all). The webhook stores the message,
starts its turn and waits up to WECHAT_PASSIVE_REPLY_SECONDS: when the bot's replies arrive in time (and fit one
text), they are claimed from the outbox and answered passively, in the webhook's own response; otherwise the webhook
answers "success" and the outbox sends them as customer-service messages. A reply goes one way only
(gateway/inline_replies.py), so a retried push (answered "success", a duplicate) never yields a second reply.

Events: subscribe clears a WeChat opt-out and is answered with the welcome and the menu as numbered choices; the
LOCATION auto-report and VIEW clicks are stored for context but not answered; unsubscribe is the vendor's opt-out
(gateway/optouts.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from channels.wechat.connector import MAX_TEXT_BYTES, WeChatConnector, utf8_len
from gateway.coordination import Coordination
from gateway.hooks import Intercept
from gateway.inline_replies import InlineReplies
from gateway.message import OutboundMessage
from gateway.metrics import Metrics
from gateway.optouts import set_opt_out
from gateway.storage import Conversation, Database, Message


def passive_text(connector: WeChatConnector, language: str, messages: list[Message]) -> str:
    """The turn's replies as the one text of a passive reply ("" when there is nothing to say)."""
    return "\n\n".join(
        t for t in (connector.text_of(OutboundMessage.from_payload(m.payload or {}), language) for m in messages) if t
    )


def passive_replies(connector: WeChatConnector, coordination: Coordination, metrics: Metrics,
                    claim_unsent: Callable[[list[int], float], Awaitable[bool]]) -> InlineReplies:
    """WeChat's five-second rule on the core's inline replies: a turn's replies that fit one text are answered
    passively; several parts go as customer-service messages, in order."""

    def fits(conversation: Conversation, messages: list[Message]) -> bool:
        text = passive_text(connector, conversation.language or "zh", messages)
        return bool(text) and utf8_len(text) <= MAX_TEXT_BYTES

    return InlineReplies(coordination, metrics, claim_unsent, fits)


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
