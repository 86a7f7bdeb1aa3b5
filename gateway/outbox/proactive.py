"""Proactive messages: telling a citizen something they did not just ask about (a work order moved, the 回访).

Stored in the conversation whatever happens: sent by the outbox, kept for a channel that cannot push (the web chat
shows it on return), or kept as "skipped" with the reason agents see (opted out, outside the channel's reply window,
no conversation, the channel not served).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from gateway import topics
from gateway.clock import utc, utc_now
from gateway.connectors import PushConnector
from gateway.coordination import Coordination
from gateway.message import OutboundMessage
from gateway.metrics import Metrics
from gateway.optouts import may_send_proactive
from gateway.pipeline import message_view
from gateway.storage import Conversation, Database, Message

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ProactiveResult:
    """queued (a push channel sends it), stored (seen on return), or skipped with the reason (opted_out,
    outside_window, no_conversation, channel_unavailable); duplicate: this key was enqueued before."""

    state: str
    reason: str | None = None
    message_id: int | None = None
    duplicate: bool = False


class Sender(Protocol):
    """What enqueueing needs of the outbox."""

    @property
    def db(self) -> Database: ...

    @property
    def coordination(self) -> Coordination: ...

    @property
    def metrics(self) -> Metrics: ...

    @property
    def connectors(self) -> Mapping[str, PushConnector]: ...

    @property
    def stored_channels(self) -> frozenset[str]:
        """Served channels that cannot push: their messages are read from storage."""
        ...

    def wake(self) -> None: ...


async def enqueue_proactive(
    sender: Sender,
    contact_id: str,
    channel: str,
    outbound: OutboundMessage,
    kind: str,
    *,
    conversation_id: str | None = None,
    key: str | None = None,
    language: str | None = None,
) -> ProactiveResult:
    """Tell a citizen something on `channel`, respecting their opt-out and the channel's reply window (outside it
    only a channel with templates may write), in the newest of the contact's conversations on that channel unless
    one is named. `key` makes it idempotent (the same key is enqueued once)."""
    now = utc_now()
    async with sender.db.sessions() as session:
        query = select(Conversation).where(Conversation.contact_id == contact_id, Conversation.channel == channel)
        if conversation_id is not None:
            query = select(Conversation).where(Conversation.id == conversation_id)
        conversation = (
            await session.execute(query.order_by(Conversation.last_activity_at.desc()).limit(1))
        ).scalar_one_or_none()
        last_in, last_spoken_at = None, None
        if conversation is not None:
            recent = (
                await session.execute(
                    select(Message)
                    .where(Message.conversation_id == conversation.id, Message.direction == "in")
                    .order_by(Message.id.desc())
                    .limit(20)
                )
            ).scalars().all()
            # Events the vendor does not count as the citizen writing (WeChat's automatic location report, a
            # menu link opened) do not open the reply window; the newest real message does.
            spoken = [m for m in recent if not ((m.payload or {}).get("metadata") or {}).get("silent")]
            last_in = recent[0] if recent else None
            last_spoken_at = utc(spoken[0].created_at) if spoken else None
    if conversation is None or last_in is None:
        log.warning("proactive.skipped", kind=kind, contact_id=contact_id, channel=channel,
                    reason="no_conversation")
        return ProactiveResult("skipped", "no_conversation")
    connector = sender.connectors.get(channel)
    state, reason, template = "queued", None, False
    if connector is None and channel in sender.stored_channels:
        state = "sent"  # nothing to push: it is in the conversation when the citizen comes back
    elif connector is None:
        state, reason = "skipped", "channel_unavailable"
    elif not await may_send_proactive(sender.db, conversation.contact_id, channel):
        state, reason = "skipped", "opted_out"
    else:
        window = connector.capabilities.reply_window_hours
        if window is not None and (last_spoken_at is None or now - last_spoken_at > timedelta(hours=window)):
            if connector.capabilities.templates:
                template = True  # expand() renders it with the connector's template rendering
            else:
                state, reason = "skipped", "outside_window"
    payload: dict[str, Any] = {k: v for k, v in outbound.to_payload().items() if v is not None}
    payload["proactive"] = {"kind": kind, "template": template, **({"skipped": reason} if reason else {})}
    payload["meta"] = {"intent": None, "confidence": None, "kb_article_ids": None, "work_order_id": None,
                       "conversation_status": conversation.status}
    row = Message(
        conversation_id=conversation.id, direction="out", sender="system", channel=channel,
        channel_account=last_in.channel_account, external_id=key, text=outbound.text,
        language=language or conversation.language, payload=payload,
        delivery_state="skipped" if reason else state, created_at=now,
    )
    try:
        async with sender.db.sessions() as session, session.begin():
            session.add(row)
            await session.flush()
    except IntegrityError:
        return ProactiveResult("skipped" if reason else state, reason, None, duplicate=True)
    if reason:
        log.info("proactive.skipped", kind=kind, conversation_id=conversation.id, channel=channel, reason=reason)
        return ProactiveResult("skipped", reason, row.id)
    log.info("proactive.enqueued", kind=kind, conversation_id=conversation.id, channel=channel, state=state,
             template=template)
    sender.metrics.outbound_messages.labels(channel, "system").inc()
    await sender.coordination.publish(
        topics.conversation(conversation.id), {"type": "message", "message": message_view(row)}
    )
    if state == "queued":
        sender.wake()
    return ProactiveResult(state, None, row.id)
