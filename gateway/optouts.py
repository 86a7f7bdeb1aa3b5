"""Opt-outs per contact and channel: "STOP" / "退订" ends proactive messages on that channel, "START" / "订阅"
brings them back, and so does the vendor's own unsubscribe (Twilio's OptOutType, WeChat's unsubscribe event).
`may_send_proactive` is what every proactive notice asks first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy import Boolean, DateTime, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.clock import utc_now
from gateway.hooks import Intercept
from gateway.message import Capabilities, OutboundMessage
from gateway.storage import Conversation, Database, Message
from gateway.storage.models import Base

log = structlog.get_logger(__name__)


class ChannelOptOut(Base):
    """Whether a contact said "no more proactive messages" on a channel (and how)."""

    __tablename__ = "channel_opt_outs"

    contact_id: Mapped[str] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True)
    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    opted_out: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(32))  # keyword, vendor
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


STOP_WORDS = {"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "退订", "td", "取消订阅"}
START_WORDS = {"start", "unstop", "subscribe", "订阅", "恢复订阅"}
OPT_OUT_CONFIRM = {
    "zh": "您已退订，我们将不再主动向您发送消息。回复“订阅”可恢复。您仍可随时向我们咨询。",
    "en": "You have unsubscribed: we will send you no more notices. Reply START to subscribe again. "
    "You can still write to us at any time.",
}
OPT_UNVERIFIED = {
    "zh": "我们无法确认这封邮件来自您本人的邮箱，因此订阅设置没有改变。请直接从您的邮箱回复“退订”或“订阅”。",
    "en": "We could not confirm that this mail came from your own mailbox, so your subscription is unchanged. "
    "Reply STOP or START from your mailbox directly.",
}
OPT_IN_CONFIRM = {
    "zh": "您已恢复订阅，我们会在工单有进展时通知您。回复“退订”可随时取消。",
    "en": "You are subscribed again: we will tell you when your work order moves. Reply STOP to unsubscribe.",
}


def opt_keyword(text: str) -> bool | None:
    """True for an opt-out keyword, False for an opt-in one, None for anything else."""
    word = re.sub(r"[\s。.!！]+", "", text).casefold()
    if word in STOP_WORDS:
        return True
    if word in START_WORDS:
        return False
    return None


async def set_opt_out(db: Database, contact_id: str, channel: str, opted_out: bool, source: str) -> bool:
    """Record the choice; True when it changed something (so it is confirmed once)."""
    async with db.sessions() as session, session.begin():
        row = await session.get(ChannelOptOut, (contact_id, channel))
        if row is None:
            if not opted_out:
                return False  # never opted out: opting in changes nothing
            session.add(ChannelOptOut(contact_id=contact_id, channel=channel, opted_out=True, source=source))
            log.info("contact.opted_out", contact_id=contact_id, channel=channel, source=source)
            return True
        if row.opted_out == opted_out:
            return False
        row.opted_out, row.source, row.changed_at = opted_out, source, utc_now()
    log.info("contact.opted_out" if opted_out else "contact.opted_in", contact_id=contact_id, channel=channel,
             source=source)
    return True


async def may_send_proactive(db: Database, contact_id: str, channel: str) -> bool:
    """Whether a proactive message (a work-order notice …) may go to this contact on this channel."""
    async with db.sessions() as session:
        row = await session.get(ChannelOptOut, (contact_id, channel))
    return row is None or not row.opted_out


@dataclass
class OptOutHook:
    """Run before the bot: STOP / 退订 and START / 订阅 on a pushing channel are recorded, confirmed once, and never
    sent to the bot."""

    db: Database
    capabilities: Mapping[str, Capabilities]  # of the channels served

    async def __call__(self, conversation: Conversation, message: Message, text: str) -> Intercept | None:
        capabilities = self.capabilities.get(message.channel)
        if capabilities is None or not capabilities.push:
            return None
        metadata = (message.payload or {}).get("metadata") or {}
        wanted = opt_keyword(message.text or "")
        vendor = metadata.get("vendor_opt_out")  # the channel's own unsubscribe (Twilio's OptOutType …)
        if vendor in ("stop", "start"):
            wanted = vendor == "stop"
        if wanted is None:
            return None
        language = conversation.language if conversation.language in OPT_OUT_CONFIRM else "zh"
        if (message.payload or {}).get("sender_verified") is False:
            # A sender the channel could not prove (mail failing SPF/DKIM/DMARC) may not change the citizen's choice.
            log.info("contact.opt_change_refused", message_id=message.id, reason="sender_unverified")
            return Intercept(replies=[OutboundMessage(text=OPT_UNVERIFIED[language])])
        changed = await set_opt_out(self.db, conversation.contact_id, message.channel, wanted,
                                    "vendor" if vendor else "keyword")
        if not changed or vendor:  # confirmed once; a vendor that handled the keyword already confirmed it
            return Intercept(replies=[])
        text_out = (OPT_OUT_CONFIRM if wanted else OPT_IN_CONFIRM)[language]
        return Intercept(replies=[OutboundMessage(text=text_out)])

