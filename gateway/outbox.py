"""The outbox: every message to a pushing channel (SMS, Telegram …) is stored, sent by a worker, retried, tracked.

- The pipeline stores replies for these channels with delivery_state "queued" in the turn's own transaction, so a
  crash after the bot answered still sends them. The worker expands each queued message into outbox rows (one per
  vendor call: an SMS part, a Telegram text or photo), rendered by the channel's connector.
- Order: per recipient only the oldest unfinished row may be sent; later replies wait behind it (also while it
  waits for a retry). Other recipients are not held up: heads of different recipients are sent concurrently.
- Exactly one sender per row across workers: a row is claimed with a conditional UPDATE and a lease; a worker that
  dies mid-send leaves the lease to expire and the row is sent again (at least once; vendors have no idempotency).
- Retries: exponential backoff with jitter on errors, Retry-After honoured on 429, "failed" after the last try —
  stored on the message (delivery_state, payload.delivery_error) and announced on the inbox topic for agents.
- Receipts (Twilio status callbacks) move rows and their message to sent / delivered / failed.
- Opt-outs per contact and channel ("STOP" / "退订", reversed by "START" / "订阅", or the vendor's own unsubscribe):
  `may_send_proactive(db, contact_id, channel)` is what proactive notices ask first.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from channels.email.connector import EmailConnector, EmailSettings
from channels.sms.connector import SmsConnector, SmsSettings
from channels.telegram.connector import TelegramConnector, TelegramSettings
from channels.wechat.connector import WeChatConnector
from gateway.clock import utc, utc_now
from gateway.coordination import Coordination
from gateway.message import Button, Capabilities, DeliveryResult, OutboundMessage
from gateway.metrics import Metrics
from gateway.pipeline import Intercept, Pipeline, message_view
from gateway.rendering import match_reply
from gateway.settings import Settings
from gateway.storage import ChannelIdentity, Conversation, Database, Message, earlier_inbound_payload
from gateway.storage.models import Base

if TYPE_CHECKING:
    from gateway.services import Services

log = structlog.get_logger(__name__)

LEASE_SECONDS = 60.0
ACTIVE_STATES = ("queued", "sending")
# A receipt never moves a row backwards (callbacks arrive out of order); failed and delivered are final.
_RANK = {"queued": 0, "sending": 0, "sent": 1, "delivered": 2, "failed": 2}




class OutboxRow(Base):
    """One vendor call for one outbound message (an SMS part, a Telegram message)."""

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("message_id", "part", name="uq_outbox_message_part"),
        Index("ix_outbox_state_due", "state", "next_attempt_at"),
        Index("ix_outbox_recipient", "channel", "channel_account", "recipient", "id"),
        Index("ix_outbox_external", "channel", "external_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    part: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(32))
    channel_account: Mapped[str] = mapped_column(String(128))
    recipient: Mapped[str] = mapped_column(String(256))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    external_id: Mapped[str | None] = mapped_column(String(256))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ChannelOptOut(Base):
    """Whether a contact said "no more proactive messages" on a channel (and how)."""

    __tablename__ = "channel_opt_outs"

    contact_id: Mapped[str] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True)
    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    opted_out: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(32))  # keyword, vendor
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class PushConnector(Protocol):
    """A connector whose replies the outbox sends (the render and send parts of a channel)."""

    name: str
    channel_account: str
    capabilities: Capabilities

    def render(self, recipient: str, outbound: OutboundMessage, language: str) -> list[dict[str, Any]]: ...

    async def send(self, payload: dict[str, Any]) -> DeliveryResult: ...

    async def fetch_media(self, attachment: dict[str, Any]) -> tuple[str | None, AsyncIterator[bytes]]: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base_seconds: float = 2.0
    max_seconds: float = 300.0

    def delay(self, attempts: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds before the next try after `attempts` failed ones."""
        if retry_after is not None and retry_after > 0:
            return retry_after * rng.uniform(1.0, 1.1)  # never sooner than the vendor asked
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** max(0, attempts - 1))
        return ceiling * rng.uniform(0.5, 1.0)  # "equal jitter": spread retries, keep the backoff


# ---- opt-outs -------------------------------------------------------------------------------------------------------

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


# ---- proactive messages (work-order notices, the 回访) ---------------------------------------------------------------

# Channels that cannot push: a proactive message is stored in the conversation and seen when the citizen returns
# (the web chat's page also gets it live on the conversation's socket).
STORED_CHANNELS = frozenset({"webchat", "rest"})


class ProactiveRenderer(Protocol):
    """A push connector that can write first outside its reply window (WeChat's template messages): it renders
    a proactive message of `kind` (work_order_assigned, work_order_survey …) into vendor payloads, or [] when it
    has no template for that kind."""

    def render_proactive(
        self, recipient: str, outbound: OutboundMessage, language: str, kind: str
    ) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class ProactiveResult:
    """queued (a push channel sends it), stored (seen on return), or skipped with the reason (opted_out,
    outside_window, no_conversation, channel_unavailable); duplicate: this key was enqueued before."""

    state: str
    reason: str | None = None
    message_id: int | None = None
    duplicate: bool = False


# ---- the worker -----------------------------------------------------------------------------------------------------


@dataclass
class Outbox:
    db: Database
    coordination: Coordination
    metrics: Metrics
    connectors: dict[str, PushConnector]
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    poll_seconds: float = 1.0
    concurrency: int = 20
    rng: random.Random = field(default_factory=random.Random)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _inflight: int = 0

    def install(self, pipeline: Pipeline) -> None:
        """Make the pipeline queue these channels' replies and wake this worker when it does."""
        for name in self.connectors:
            pipeline.queued_channels.add(name)
            pipeline.deliverers[name] = self.deliverer
        pipeline.turn_hooks.append(self.no_reply_hook)
        pipeline.turn_hooks.append(self.opt_out_hook)
        pipeline.turn_hooks.append(self.numbered_reply_hook)

    async def enqueue_proactive(
        self,
        contact_id: str,
        channel: str,
        outbound: OutboundMessage,
        kind: str,
        *,
        conversation_id: str | None = None,
        key: str | None = None,
        language: str | None = None,
    ) -> ProactiveResult:
        """Tell a citizen something they did not just ask about, on `channel`, respecting their opt-out and the
        channel's reply window (outside it only a connector with `render_proactive` may write). Stored in the
        conversation (the newest of the contact's on that channel, unless one is named) either way: sent by this
        outbox, kept for a channel that cannot push, or kept as "skipped" with the reason for agents to see.
        `key` makes it idempotent (the same key is enqueued once)."""
        now = utc_now()
        async with self.db.sessions() as session:
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
        connector = self.connectors.get(channel)
        state, reason, template = "queued", None, False
        if channel in STORED_CHANNELS and connector is None:
            state = "sent"  # nothing to push: it is in the conversation when the citizen comes back
        elif connector is None:
            state, reason = "skipped", "channel_unavailable"
        elif not await may_send_proactive(self.db, conversation.contact_id, channel):
            state, reason = "skipped", "opted_out"
        else:
            window = connector.capabilities.reply_window_hours
            if window is not None and (last_spoken_at is None or now - last_spoken_at > timedelta(hours=window)):
                if callable(getattr(connector, "render_proactive", None)):
                    template = True  # expand() renders it with the connector's proactive (template) rendering
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
            async with self.db.sessions() as session, session.begin():
                session.add(row)
                await session.flush()
        except IntegrityError:
            return ProactiveResult("skipped" if reason else state, reason, None, duplicate=True)
        if reason:
            log.info("proactive.skipped", kind=kind, conversation_id=conversation.id, channel=channel, reason=reason)
            return ProactiveResult("skipped", reason, row.id)
        log.info("proactive.enqueued", kind=kind, conversation_id=conversation.id, channel=channel, state=state,
                 template=template)
        self.metrics.outbound_messages.labels(channel, "system").inc()
        await self.coordination.publish(
            f"conversation:{conversation.id}", {"type": "message", "message": message_view(row)}
        )
        if state == "queued":
            self.wake()
        return ProactiveResult(state, None, row.id)

    async def deliverer(self, _conversation: Conversation, _messages: list[Message]) -> None:
        self.wake()

    def wake(self) -> None:
        self._wake.set()

    async def close(self) -> None:
        for connector in self.connectors.values():
            await connector.close()

    async def run(self) -> None:
        """Forever: expand queued messages, send what is due; sleep until woken or the next retry is due."""
        while True:
            try:
                self._wake.clear()
                await self.expand()
                worked, next_due = await self.send_due()
                if worked:
                    continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep the worker alive; the next round retries
                log.error("outbox.round_failed", error=repr(exc))
                next_due = None
            timeout = self.poll_seconds
            if next_due is not None:
                timeout = max(0.01, min(timeout, (next_due - utc_now()).total_seconds()))
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass

    async def drain(self, timeout_seconds: float = 10.0) -> None:
        """Send everything due now and soon (tests, shutdown); stops when nothing is active or time is up."""
        deadline = asyncio.get_running_loop().time() + timeout_seconds
        while asyncio.get_running_loop().time() < deadline:
            await self.expand()
            worked, next_due = await self.send_due()
            if not worked and next_due is None and not self._inflight:
                return
            if not worked:
                await asyncio.sleep(0.02)

    # -- expand queued messages into rows ----------------------------------------------------------------------------

    async def expand(self) -> int:
        """Render queued messages that have no rows yet (one expander at a time keeps rows in message order)."""
        channels = list(self.connectors)
        if not channels:
            return 0
        async with self.coordination.lock("outbox:expand", hold_seconds=30, wait_seconds=30):
            async with self.db.sessions() as session:
                rows = (
                    await session.execute(
                        select(Message, ChannelIdentity.external_user_id, Conversation.language)
                        .join(Conversation, Conversation.id == Message.conversation_id)
                        .join(ChannelIdentity, ChannelIdentity.id == Conversation.identity_id)
                        .where(
                            Message.direction == "out",
                            Message.delivery_state == "queued",
                            Message.channel.in_(channels),
                            ~select(OutboxRow.id).where(OutboxRow.message_id == Message.id).exists(),
                        )
                        .order_by(Message.id)
                        .limit(500)
                    )
                ).all()
            made = 0
            for message, recipient, language in rows:
                made += await self._expand_one(message, recipient, language or "zh")
            return made

    async def _expand_one(self, message: Message, recipient: str, language: str) -> int:
        connector = self.connectors[message.channel]
        outbound = OutboundMessage.from_payload(message.payload or {})
        proactive = (message.payload or {}).get("proactive") or {}
        try:
            if proactive.get("template") and callable(getattr(connector, "render_proactive", None)):
                # Outside the channel's reply window: the connector's template rendering (see enqueue_proactive).
                payloads = connector.render_proactive(recipient, outbound, language, str(proactive.get("kind")))  # type: ignore[attr-defined]
            elif callable(getattr(connector, "render_in_thread", None)):
                # A channel with threads of its own (e-mail): the reply answers the citizen's last message.
                thread = await self._thread_of(message)
                payloads = connector.render_in_thread(recipient, outbound, language, thread)  # type: ignore[attr-defined]
            else:
                payloads = connector.render(recipient, outbound, language)
        except Exception as exc:  # a message that cannot be rendered fails visibly, it does not block the queue
            log.error("outbox.render_failed", message_id=message.id, error=repr(exc))
            payloads = []
            await self._mark_message(message.id, "failed", f"render: {exc!r}")
            return 0
        if not payloads:
            await self._mark_message(message.id, "sent", None)  # nothing the channel can carry
            return 0
        try:
            async with self.db.sessions() as session, session.begin():
                session.add_all(
                    OutboxRow(
                        message_id=message.id, part=i, channel=message.channel,
                        channel_account=message.channel_account, recipient=recipient, payload=payload,
                        state="queued", attempts=0, next_attempt_at=utc_now(),
                    )
                    for i, payload in enumerate(payloads)
                )
        except IntegrityError:
            return 0  # another worker expanded it
        return len(payloads)

    async def _thread_of(self, message: Message) -> dict[str, Any]:
        """The channel's thread data (metadata[channel]) of the last citizen message before this one, and who
        wrote this one (bot, agent, system)."""
        async with self.db.sessions() as session:
            last_in = await earlier_inbound_payload(session, message.conversation_id, message.id)
        metadata: dict[str, Any] = (last_in.get("metadata") if last_in else None) or {}
        return {**(metadata.get(message.channel) or {}), "sender": message.sender}

    # -- send ------------------------------------------------------------------------------------------------------

    async def send_due(self) -> tuple[int, datetime | None]:
        """Send the due head row of every recipient; returns (rows tried, when the next waiting row is due)."""
        now = utc_now()
        async with self.db.sessions() as session:
            active = (
                await session.execute(
                    select(OutboxRow)
                    .where(OutboxRow.state.in_(ACTIVE_STATES))
                    .order_by(OutboxRow.message_id, OutboxRow.part)
                    .limit(5000)
                )
            ).scalars().all()
        heads: dict[tuple[str, str, str], OutboxRow] = {}
        for row in active:
            heads.setdefault((row.channel, row.channel_account, row.recipient), row)
        due: list[OutboxRow] = []
        next_due: datetime | None = None
        for row in heads.values():
            if row.state == "queued":
                at = utc(row.next_attempt_at)
            else:  # being sent; due again only if its worker's lease ran out
                at = utc(row.claimed_until or now)
            if at <= now:
                due.append(row)
            elif next_due is None or at < next_due:
                next_due = at
        if not due:
            return 0, next_due
        gate = asyncio.Semaphore(self.concurrency)

        async def one(row: OutboxRow) -> None:
            async with gate:
                self._inflight += 1
                try:
                    await self._attempt(row)
                finally:
                    self._inflight -= 1

        await asyncio.gather(*(one(r) for r in due))
        return len(due), next_due

    async def _claim(self, row: OutboxRow) -> bool:
        now = utc_now()
        async with self.db.sessions() as session, session.begin():
            result = await session.execute(
                update(OutboxRow)
                .where(
                    OutboxRow.id == row.id,
                    # The row as we read it: another worker that tried it since (even one that re-queued it) wins.
                    OutboxRow.attempts == row.attempts,
                    (OutboxRow.state == "queued")
                    | ((OutboxRow.state == "sending") & (OutboxRow.claimed_until < now)),
                )
                .values(state="sending", claimed_until=now + timedelta(seconds=LEASE_SECONDS))
            )
        return bool(getattr(result, "rowcount", 0) == 1)

    async def _attempt(self, row: OutboxRow) -> None:
        if not await self._claim(row):
            return
        connector = self.connectors.get(row.channel)
        if connector is None:
            return
        try:
            result = await asyncio.wait_for(connector.send(row.payload), LEASE_SECONDS / 2)
        except Exception as exc:  # an SDK error we did not map: retry it
            result = DeliveryResult("retry", error=repr(exc)[:500])
        attempts = row.attempts + 1
        values: dict[str, Any] = {"attempts": attempts, "claimed_until": None}
        if result.state == "sent":
            values.update(state="sent", external_id=result.external_id, sent_at=utc_now(), last_error=None)
        elif result.state == "retry" and attempts < self.policy.max_attempts:
            delay = self.policy.delay(attempts, result.retry_after_seconds, self.rng)
            values.update(state="queued", next_attempt_at=utc_now() + timedelta(seconds=delay), last_error=result.error)
            log.warning("outbox.retry", message_id=row.message_id, part=row.part, attempts=attempts,
                        delay_seconds=round(delay, 2), error=result.error)
        else:
            values.update(state="failed", last_error=result.error or "failed")
        async with self.db.sessions() as session, session.begin():
            await session.execute(update(OutboxRow).where(OutboxRow.id == row.id).values(**values))
        if values["state"] in ("sent", "failed"):
            await self._refresh_message(row.message_id)
        if values["state"] == "failed":
            log.error("outbox.failed", message_id=row.message_id, part=row.part, attempts=attempts,
                      error=values["last_error"])
            if (result.error or "").startswith("opted_out"):
                await self._vendor_opt_out(row.message_id, row.channel)

    async def _refresh_message(self, message_id: int) -> None:
        """The message's delivery_state from its rows: failed if any failed, else the least advanced."""
        async with self.db.sessions() as session:
            parts = (
                await session.execute(
                    select(OutboxRow.state, OutboxRow.last_error).where(OutboxRow.message_id == message_id)
                )
            ).all()
        states = [p.state for p in parts]
        if not states:
            return
        error = next((p.last_error for p in parts if p.state == "failed"), None)
        if "failed" in states:
            state = "failed"
        elif all(s == "delivered" for s in states):
            state = "delivered"
        elif all(s in ("sent", "delivered") for s in states):
            state = "sent"
        else:
            state = "queued"
        await self._mark_message(message_id, state, error)

    async def _mark_message(self, message_id: int, state: str, error: str | None) -> None:
        async with self.db.sessions() as session, session.begin():
            message = await session.get(Message, message_id)
            if message is None or message.delivery_state == state:
                return
            message.delivery_state = state
            if error:
                message.payload = {**(message.payload or {}), "delivery_error": error}
            conversation_id, channel, sender = message.conversation_id, message.channel, message.sender
        if state == "sent":
            self.metrics.outbound_messages.labels(channel, f"{sender}:sent").inc()
        event = {"type": "delivery", "conversation_id": conversation_id, "message_id": str(message_id),
                 "state": state, "error": error}
        # The conversation's page shows the tick; the inbox shows agents what did not reach the citizen.
        await self.coordination.publish(f"conversation:{conversation_id}", event)
        if state == "failed":
            await self.coordination.publish("inbox", event)

    async def _vendor_opt_out(self, message_id: int, channel: str) -> None:
        async with self.db.sessions() as session:
            row = (
                await session.execute(
                    select(Conversation.contact_id)
                    .join(Message, Message.conversation_id == Conversation.id)
                    .where(Message.id == message_id)
                )
            ).scalar_one_or_none()
        if row is not None:
            await set_opt_out(self.db, row, channel, True, "vendor")

    # -- receipts --------------------------------------------------------------------------------------------------

    async def receipt(self, channel: str, external_id: str, state: str, error: str | None = None) -> bool:
        """A vendor's delivery receipt for one sent row; False when the id is not ours."""
        async with self.db.sessions() as session, session.begin():
            row = (
                await session.execute(
                    select(OutboxRow).where(OutboxRow.channel == channel, OutboxRow.external_id == external_id)
                )
            ).scalar_one_or_none()
            if row is None:
                return False
            message_id = row.message_id
            if _RANK.get(state, 0) > _RANK.get(row.state, 0) or (row.state == "sending" and state == "sent"):
                row.state = state
                if error:
                    row.last_error = error
        await self._refresh_message(message_id)
        return True

    # -- hooks run before the bot ---------------------------------------------------------------------------------

    async def no_reply_hook(self, _conversation: Conversation, message: Message, _text: str) -> Intercept | None:
        """A message the channel marked `no_reply` (e-mail from a machine: an auto-reply, a bounce, a list, our own
        address) is stored and shown but never answered: no bot turn, so no mail loop can start."""
        reason = ((message.payload or {}).get("metadata") or {}).get("no_reply")
        if not reason or message.channel not in self.connectors:
            return None
        log.info("turn.not_answered", message_id=message.id, reason=reason)
        return Intercept(replies=[])

    async def opt_out_hook(self, conversation: Conversation, message: Message, text: str) -> Intercept | None:
        """STOP / 退订 and START / 订阅 on a pushing channel: recorded, confirmed once, never sent to the bot."""
        if message.channel not in self.connectors:
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

    async def numbered_reply_hook(self, conversation: Conversation, message: Message, text: str
                                  ) -> Intercept | None:
        """On a channel without buttons, "2" / "二" / a title picks that button of the last bot message."""
        connector = self.connectors.get(message.channel)
        if connector is None or (message.payload or {}).get("reply_payload"):
            return None
        index = ((message.payload or {}).get("metadata") or {}).get("button_index")
        if connector.capabilities.buttons and not index:
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


# ---- wiring ---------------------------------------------------------------------------------------------------------


@dataclass
class PushChannels:
    """The pushing channels whose settings are present (a channel without settings is not served at all)."""

    sms: SmsConnector | None = None
    telegram: TelegramConnector | None = None
    wechat: WeChatConnector | None = None
    email: EmailConnector | None = None

    def all(self) -> dict[str, PushConnector]:
        found: dict[str, PushConnector] = {}
        if self.sms is not None:
            found[self.sms.name] = self.sms
        if self.telegram is not None:
            found[self.telegram.name] = self.telegram
        if self.wechat is not None:
            found[self.wechat.name] = self.wechat
        if self.email is not None:
            found[self.email.name] = self.email
        return found


def build_push_channels(settings: Settings) -> PushChannels:
    channels = PushChannels()
    if settings.twilio_account_sid and settings.twilio_auth_token and settings.twilio_from_number:
        channels.sms = SmsConnector(SmsSettings(
            settings.twilio_account_sid, settings.twilio_auth_token, settings.twilio_from_number,
            settings.base_url, settings.twilio_api_base_url,
        ))
    if settings.telegram_bot_token and settings.telegram_webhook_secret:
        channels.telegram = TelegramConnector(TelegramSettings(
            settings.telegram_bot_token, settings.telegram_webhook_secret, settings.telegram_api_base_url
        ))
    channels.wechat = WeChatConnector.from_settings(settings)
    if settings.email_imap_host and settings.email_imap_user and settings.email_smtp_host and settings.email_from:
        channels.email = EmailConnector(EmailSettings(
            imap_host=settings.email_imap_host, imap_user=settings.email_imap_user,
            imap_password=settings.email_imap_password, smtp_host=settings.email_smtp_host,
            from_address=settings.email_from, imap_port=settings.email_imap_port, imap_ssl=settings.email_imap_ssl,
            folder=settings.email_imap_folder, smtp_port=settings.email_smtp_port,
            smtp_user=settings.email_smtp_user, smtp_password=settings.email_smtp_password,
            smtp_starttls=settings.email_smtp_starttls, poll_seconds=settings.email_poll_seconds,
            authserv_id=settings.email_authserv_id, verify_dkim=settings.email_verify_dkim,
        ))
    return channels


def start_delivery(services: Services, channels: PushChannels) -> Outbox:
    """Build the outbox for these channels, hook it (and contacts, media) into the pipeline, start its worker."""
    from gateway.contact_merge import ContactMergeHook
    from gateway.media import MediaHook, MediaStore

    settings = services.settings
    connectors = channels.all()
    outbox = Outbox(
        services.db, services.coordination, services.metrics, connectors,
        RetryPolicy(settings.outbox_max_attempts, settings.outbox_retry_base_seconds,
                    settings.outbox_retry_max_seconds),
    )
    pipeline = services.pipeline
    # Order matters: one contact first (opt-outs apply to it), then media (the bot sees references). Contacts merge
    # on every channel: a trusted REST integration may vouch for a phone too.
    pipeline.turn_hooks.append(ContactMergeHook(services.db))
    if connectors:
        pipeline.turn_hooks.append(MediaHook(
            MediaStore(settings.data_dir, settings.media_max_bytes), services.db, dict(connectors)
        ))
        outbox.install(pipeline)
        if channels.wechat is not None:
            from channels.wechat.passive import install as install_wechat

            channels.wechat.share(services.coordination)  # one access_token for every worker
            install_wechat(channels.wechat, pipeline, outbox)  # passive replies, subscribe and menu events
        services.spawn(outbox.run(), name="outbox")
    return outbox
