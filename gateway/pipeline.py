"""The pipeline every inbound message goes through: dedupe → contact & conversation → per-conversation order → route.

`receive` stores the message durably (and is all a fast-acking webhook waits for); `process` runs the conversation's
waiting turns one at a time, oldest first, under the conversation's lock, so two quick messages are answered in
order and a message that arrived while Rasa was down is answered when it is back. Nothing the citizen wrote is lost:
a turn is marked done only in the transaction that stores its replies.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import topics
from gateway.clock import iso, utc
from gateway.coordination import Coordination
from gateway.engine import BotTurn, BotUnavailable, RasaClient
from gateway.hooks import TurnHook, TurnObserver
from gateway.language import LanguageTagger
from gateway.message import InboundMessage, OutboundMessage
from gateway.metrics import Metrics
from gateway.storage import ChannelIdentity, Contact, Conversation, Database, Message

log = structlog.get_logger(__name__)

DEDUPE_TTL_SECONDS = 7 * 24 * 3600
WAITING_STATES = ("received", "deferred")
# Tries of one turn while Rasa is up before it is set aside ("failed", a dead letter agents see).
MAX_BOT_ATTEMPTS = 3

FALLBACK_TEXT = {
    "zh": "抱歉，系统暂时有点忙，您的留言我们已经记下，稍后会回复您，必要时会有工作人员跟进。",
    "en": "Sorry, we're having trouble right now. Your message is saved and we will reply shortly; "
    "a person will follow up if needed.",
}

DEAD_LETTER_TEXT = {
    "zh": "抱歉，这条消息系统暂时无法自动处理，已转给工作人员查看，请稍候。",
    "en": "Sorry, the system could not handle this message automatically. A person will look at it; please wait.",
}
DEAD_LETTER_REASON = "the bot failed on this message several times"

# Conversation statuses in which the bot speaks; in the others a person has (or will have) the conversation.
BOT_STATUSES = ("bot", "resolved")


@dataclass
class Received:
    message_id: int
    conversation_id: str
    contact_id: str
    duplicate: bool


@dataclass
class TurnOutcome:
    message_id: int
    conversation_id: str
    duplicate: bool
    status: str
    replies: list[Message] = field(default_factory=list)


def scoped_external_id(external_user_id: str, external_message_id: str) -> str:
    """The stored id of a message whose vendor id another sender already used (fits the 256-character column)."""
    digest = hashlib.sha256(json.dumps([external_user_id, external_message_id]).encode()).hexdigest()
    return f"scoped:{digest}"


def message_view(message: Message) -> dict[str, Any]:
    """A message as pages and sockets show it (the web chat's Msg shape)."""
    payload = message.payload or {}
    sender = message.sender
    return {
        "id": str(message.id),
        "from": sender,
        "text": message.original_text if sender == "citizen" and message.original_text else message.text,
        "buttons": payload.get("buttons"),
        "image": payload.get("image"),
        "attachments": payload.get("attachments"),
        "client_id": payload.get("client_id"),
        "created_at": iso(message.created_at),
    }



class Delivery(Protocol):
    """Where replies go once stored: the outbox for the pushing channels (gateway/outbox)."""

    def queues(self, channel: str) -> bool:
        """Whether this channel's replies are sent by a worker (stored "queued") or read from storage ("sent")."""
        ...

    async def deliver(self, conversation: Conversation, replies: list[Message]) -> None: ...


class Pipeline:
    def __init__(
        self,
        db: Database,
        coordination: Coordination,
        bot: RasaClient,
        language: LanguageTagger,
        metrics: Metrics,
    ) -> None:
        self.db = db
        self.coordination = coordination
        self.bot = bot
        self.language = language
        self.metrics = metrics
        # Set once, in one place (app/hooks.py): the hooks before and after the bot, in order, and the delivery.
        self.turn_hooks: list[TurnHook] = []
        self.turn_observers: list[TurnObserver] = []
        self.delivery: Delivery | None = None

    def use(self, before: Sequence[TurnHook] = (), after: Sequence[TurnObserver] = (),
            delivery: Delivery | None = None) -> None:
        """Run these hooks, in this order, before and after the bot; hand stored replies to `delivery`."""
        self.turn_hooks = list(before)
        self.turn_observers = list(after)
        self.delivery = delivery

    # ---- receive: durable, deduplicated -------------------------------------------------------------------------

    async def receive(self, inbound: InboundMessage) -> Received:
        ext = inbound.external_message_id
        # Message ids are deduplicated per sender: a second sender reusing someone's id (a REST Idempotency-Key, an
        # e-mail Message-ID) is another message, and never gets the first sender's replies.
        dedupe_key = f"in:{inbound.channel}:{inbound.channel_account}:{inbound.external_user_id}:{ext}"
        if ext and not await self.coordination.first_seen(dedupe_key, DEDUPE_TTL_SECONDS):
            existing, _ = await self._find_inbound(inbound)
            if existing is not None:  # the fast path only saves work; the database is the truth
                return self._duplicate(inbound, existing)
        identity_lock = f"identity:{inbound.channel}:{inbound.channel_account}:{inbound.external_user_id}"
        # One identity's messages are stored one at a time: ids then follow arrival order, and a new citizen's
        # two first messages do not open two conversations.
        async with self.coordination.lock(identity_lock, hold_seconds=30, wait_seconds=30):
            taken = False
            if ext:
                existing, taken = await self._find_inbound(inbound)
                if existing is not None:
                    return self._duplicate(inbound, existing)
            async with self.db.sessions() as session:
                for attempt in range(2):
                    identity = await self._identity(session, inbound)  # anew after a rollback (expired)
                    # The vendor's id as it is, unless another sender has it: then one scoped to this sender.
                    external_id = scoped_external_id(inbound.external_user_id, ext) if ext and taken else ext
                    try:
                        async with session.begin():
                            conversation = await self._open_conversation(
                                session, identity, inbound.metadata.get("thread")
                            )
                            message = self._inbound_row(inbound, conversation, external_id)
                            session.add(message)
                            await session.flush()
                        break
                    except IntegrityError:
                        existing, taken = await self._find_inbound(inbound)
                        if existing is not None:
                            return self._duplicate(inbound, existing)
                        if attempt or not taken:
                            raise
        self.metrics.inbound_messages.labels(inbound.channel).inc()
        log.info(
            "message.received", conversation_id=conversation.id, message_id=message.id, channel=inbound.channel,
            language=message.language,
        )
        await self.coordination.publish(
            topics.conversation(conversation.id), {"type": "message", "message": message_view(message)}
        )
        await self.coordination.publish(
            topics.INBOX, {"type": "activity", "conversation_id": conversation.id, "status": conversation.status}
        )
        return Received(message.id, conversation.id, identity.contact_id, duplicate=False)

    def _duplicate(self, inbound: InboundMessage, existing: Message) -> Received:
        self.metrics.duplicates.labels(inbound.channel).inc()
        log.info("message.duplicate", conversation_id=existing.conversation_id, message_id=existing.id)
        contact_id = str((existing.payload or {}).get("contact_id", ""))
        return Received(existing.id, existing.conversation_id, contact_id, duplicate=True)

    async def _find_inbound(self, inbound: InboundMessage) -> tuple[Message | None, bool]:
        """This sender's earlier message with the same id (a redelivery), and whether another sender has the id."""
        ext = inbound.external_message_id
        if not ext:
            return None, False
        async with self.db.sessions() as session:
            rows = (
                await session.execute(
                    select(Message, ChannelIdentity.external_user_id)
                    .join(Conversation, Conversation.id == Message.conversation_id)
                    .join(ChannelIdentity, ChannelIdentity.id == Conversation.identity_id)
                    .where(
                        Message.channel == inbound.channel,
                        Message.channel_account == inbound.channel_account,
                        Message.direction == "in",
                        Message.external_id.in_((ext, scoped_external_id(inbound.external_user_id, ext))),
                    )
                )
            ).all()
        own = next((m for m, owner in rows if owner == inbound.external_user_id), None)
        return own, any(owner != inbound.external_user_id for _, owner in rows)

    async def _identity(self, session: AsyncSession, inbound: InboundMessage) -> ChannelIdentity:
        query = select(ChannelIdentity).where(
            ChannelIdentity.channel == inbound.channel,
            ChannelIdentity.channel_account == inbound.channel_account,
            ChannelIdentity.external_user_id == inbound.external_user_id,
        )
        try:
            async with session.begin():
                identity = (await session.execute(query)).scalar_one_or_none()
                if identity is None:
                    contact = Contact(display_name=inbound.metadata.get("display_name"))
                    session.add(contact)
                    await session.flush()
                    identity = ChannelIdentity(
                        contact_id=contact.id,
                        channel=inbound.channel,
                        channel_account=inbound.channel_account,
                        external_user_id=inbound.external_user_id,
                    )
                    session.add(identity)
                    await session.flush()
        except IntegrityError:  # another worker created it first
            async with session.begin():
                identity = (await session.execute(query)).scalar_one()
        return identity

    async def _open_conversation(self, session: AsyncSession, identity: ChannelIdentity, thread: str | None = None
                                 ) -> Conversation:
        """The identity's latest conversation, or a new one. A channel with threads of its own (e-mail) decides:
        `thread` is "new" (a new subject starts a conversation) or the id of the conversation a reply continues."""
        conversation: Conversation | None = None
        if thread and thread != "new":
            conversation = await session.get(Conversation, thread)
            if conversation is not None and conversation.identity_id != identity.id:
                conversation = None  # someone else's thread (a forwarded mail …): this sender's own conversation
        if conversation is None and thread != "new":
            result = await session.execute(
                select(Conversation)
                .where(Conversation.identity_id == identity.id)
                .order_by(Conversation.last_activity_at.desc())
                .limit(1)
            )
            conversation = result.scalar_one_or_none()
        now = datetime.now(UTC)
        if conversation is None:
            conversation = Conversation(
                contact_id=identity.contact_id, identity_id=identity.id, channel=identity.channel,
                created_at=now, last_activity_at=now,
            )
            session.add(conversation)
            await session.flush()
        elif conversation.status == "resolved":
            conversation.status = "bot"  # a new message after resolution goes back to the bot
        conversation.last_activity_at = now
        return conversation

    def _inbound_row(self, inbound: InboundMessage, conversation: Conversation, external_id: str | None) -> Message:
        if inbound.reply_payload:
            language = conversation.language or "zh"  # a pressed button says nothing about the citizen's language
        else:
            language = self.language.detect(inbound.text, default=conversation.language or "zh")  # type: ignore[arg-type]
        conversation.language = language
        payload: dict[str, Any] = {"contact_id": conversation.contact_id}
        if inbound.reply_payload:
            payload["reply_payload"] = inbound.reply_payload
        if inbound.attachments:
            payload["attachments"] = [
                {"kind": a.kind, "url": a.url, "ref": a.ref, "mime": a.mime, "name": a.name}
                for a in inbound.attachments
            ]
        if inbound.location:
            loc = inbound.location
            payload["location"] = {"latitude": loc.latitude, "longitude": loc.longitude, "label": loc.label}
        if inbound.metadata.get("client_id"):
            payload["client_id"] = inbound.metadata["client_id"]
        extra = {k: v for k, v in inbound.metadata.items() if k not in ("client_id", "display_name")}
        if extra:
            payload["metadata"] = extra
        if inbound.raw is not None:
            payload["raw"] = inbound.raw
        # Identity claims live apart from the metadata: only a connector that proved them sets these fields.
        if inbound.verified_phone:
            payload["verified_phone"] = inbound.verified_phone
        if not inbound.sender_verified:
            payload["sender_verified"] = False
        return Message(
            conversation_id=conversation.id,
            direction="in",
            sender="citizen",
            channel=inbound.channel,
            channel_account=inbound.channel_account,
            external_id=external_id,
            text=self.language.to_simplified(inbound.text),
            original_text=inbound.text,
            language=language,
            payload=payload,
            turn_state="received",
            created_at=utc(inbound.timestamp),
        )

    # ---- process: one conversation's waiting turns, in order ----------------------------------------------------

    async def process(self, conversation_id: str) -> None:
        """Run every waiting turn of the conversation, oldest first. Safe to call from anywhere, any number of times."""
        with structlog.contextvars.bound_contextvars(conversation_id=conversation_id):
            async with self.coordination.lock(topics.conversation(conversation_id)):
                while True:
                    async with self.db.sessions() as session:
                        message = (
                            await session.execute(
                                select(Message)
                                .where(
                                    Message.conversation_id == conversation_id,
                                    Message.direction == "in",
                                    Message.turn_state.in_(WAITING_STATES),
                                )
                                .order_by(Message.id)
                                .limit(1)
                            )
                        ).scalar_one_or_none()
                        conversation = await session.get(Conversation, conversation_id)
                    if message is None or conversation is None:
                        return
                    if not await self._turn(conversation, message):
                        return  # Rasa unreachable: later turns wait behind this one, in order

    async def _turn(self, conversation: Conversation, message: Message) -> bool:
        text = (message.payload or {}).get("reply_payload") or message.text or ""
        no_reply = ((message.payload or {}).get("metadata") or {}).get("no_reply")
        if no_reply:
            # The channel marked it (mail from a machine: an auto-reply, a bounce, a list, our own address): stored
            # and shown, never answered, so no mail loop can start.
            log.info("turn.not_answered", message_id=message.id, reason=no_reply)
            await self._finish(message, [], None)
            return True
        for hook in self.turn_hooks:
            intercept = await hook(conversation, message, text)
            if intercept is not None and intercept.replies is not None:
                answered = await self._finish(message, [r.to_payload() for r in intercept.replies], None)
                await self._deliver(conversation.id, answered)
                return True
            if intercept is not None and intercept.text is not None:
                text = intercept.text
        if conversation.status not in BOT_STATUSES:
            # A person has the conversation: the bot stays quiet; the message is already in the inbox.
            await self._finish(message, [], None)
            return True
        topic = topics.conversation(conversation.id)
        await self.coordination.publish(topic, {"type": "typing", "on": True})
        payload = message.payload or {}  # hooks may have added to it (kept media)
        metadata = {
            "language": message.language,
            "channel": message.channel,
            "contact_id": conversation.contact_id,
            "conversation_id": conversation.id,
            "original_text": message.original_text,
            "attachments": payload.get("attachments") or [],
            "location": payload.get("location"),
            # The bot's actions read and rate work orders only for a sender the channel proved.
            "sender_verified": payload.get("sender_verified", True),
        }
        async with self.db.sessions() as session:
            contact = await session.get(Contact, conversation.contact_id)
        if contact is not None and contact.phone and metadata["sender_verified"]:
            # A phone the channel vouched for (SMS sender, Telegram shared contact): the work-order form takes it.
            metadata["phone"] = contact.phone
        started = time.perf_counter()
        try:
            turn = await self.bot.turn(conversation.id, text, metadata)
        except BotUnavailable as exc:
            self.metrics.bot_failures.inc()
            log.warning("bot.unavailable", message_id=message.id, error=str(exc))
            await self.coordination.publish(topic, {"type": "typing", "on": False})
            # Rasa up and still failing on this message: after a few tries it is set aside for a person, so one
            # message the engine cannot handle never holds the citizen's later ones back for ever.
            if await self.bot.is_ready() and await self._count_failure(message) >= MAX_BOT_ATTEMPTS:
                await self._dead_letter(conversation, message, str(exc))
                return True
            await self._defer(conversation, message)
            return False
        finally:
            self.metrics.bot_turn_seconds.observe(time.perf_counter() - started)
        replies = await self._finish(message, turn.messages, turn)
        await self._deliver(conversation.id, replies)
        await self.coordination.publish(topic, {"type": "typing", "on": False})
        return True

    async def _finish(self, message: Message, bot_messages: list[dict[str, Any]], turn: BotTurn | None,
                      turn_state: str = "done", record: dict[str, Any] | None = None) -> list[Message]:
        """Store the replies and mark the turn done (or failed: a dead letter), in one transaction."""
        async with self.db.sessions() as session, session.begin():
            conversation = await session.get(Conversation, message.conversation_id)
            assert conversation is not None
            status_before = conversation.status
            if turn is not None and turn.slots_set.get("handoff_requested"):
                conversation.status = "pending"
            extra: list[OutboundMessage] = []
            if turn is not None:
                for observer in self.turn_observers:
                    extra += await observer(session, conversation, message, turn)
            meta = {
                "intent": turn.intent if turn else None,
                "confidence": turn.confidence if turn else None,
                "kb_article_ids": turn.slots_set.get("kb_article_ids") if turn else None,
                "work_order_id": turn.slots_set.get("work_order_id") if turn else None,
                "conversation_status": conversation.status,
            }
            replies = [
                self._outbound_row(conversation, message, OutboundMessage.from_payload(item), meta, "bot")
                for item in bot_messages
            ]
            # Notices are "system"; one with buttons speaks as the bot (chat widgets offer bot and agent buttons only).
            replies += [self._outbound_row(conversation, message, out, meta, "bot" if out.buttons else "system")
                        for out in extra]
            session.add_all(replies)
            stored = await session.get(Message, message.id)
            assert stored is not None
            stored.turn_state = turn_state
            stored.payload = {**(stored.payload or {}), **(record or {}), "meta": meta}
            conversation.last_activity_at = datetime.now(UTC)
            await session.flush()
        if conversation.status != status_before:
            log.info("conversation.status", status=conversation.status, previous=status_before)
            await self.coordination.publish(
                topics.INBOX, {"type": "status", "conversation_id": conversation.id, "status": conversation.status}
            )
        return replies

    def _outbound_row(self, conversation: Conversation, inbound: Message, out: OutboundMessage,
                      meta: dict[str, Any], sender: str) -> Message:
        payload = {k: v for k, v in out.to_payload().items() if v is not None}
        payload["meta"] = meta
        return Message(
            conversation_id=conversation.id,
            direction="out",
            sender=sender,
            channel=inbound.channel,
            channel_account=inbound.channel_account,
            reply_to_id=inbound.id,
            text=out.text,
            language=conversation.language,
            payload=payload,
            delivery_state="queued" if self.delivery is not None and self.delivery.queues(inbound.channel) else "sent",
        )

    async def _defer(self, conversation: Conversation, message: Message) -> None:
        """Keep the turn for later and, once per outage, tell the citizen politely."""
        async with self.db.sessions() as session, session.begin():
            already_told = (
                await session.execute(
                    select(func.count())
                    .select_from(Message)
                    .where(
                        Message.conversation_id == conversation.id,
                        Message.direction == "in",
                        Message.turn_state == "deferred",
                    )
                )
            ).scalar_one()
            # This turn and every later one wait for the bot, in order.
            await session.execute(
                update(Message)
                .where(
                    Message.conversation_id == conversation.id,
                    Message.direction == "in",
                    Message.turn_state == "received",
                )
                .values(turn_state="deferred")
            )
            replies: list[Message] = []
            if not already_told:
                language = message.language if message.language in FALLBACK_TEXT else "zh"
                meta = {
                    "intent": None, "confidence": None, "kb_article_ids": None, "work_order_id": None,
                    "conversation_status": conversation.status,
                }
                reply = self._outbound_row(
                    conversation, message, OutboundMessage(text=FALLBACK_TEXT[language]), meta, "system"
                )
                session.add(reply)
                replies.append(reply)
            await session.flush()
        await self._deliver(conversation.id, replies)

    async def _count_failure(self, message: Message) -> int:
        """One more failed try of this turn while Rasa answered other requests; returns the count."""
        async with self.db.sessions() as session, session.begin():
            stored = await session.get(Message, message.id)
            if stored is None:
                return 0
            attempts = int((stored.payload or {}).get("bot_attempts", 0)) + 1
            stored.payload = {**(stored.payload or {}), "bot_attempts": attempts}
        return attempts

    async def _dead_letter(self, conversation: Conversation, message: Message, error: str) -> None:
        """Set the turn aside as failed (kept, its conversation handed to a person so agents see it in the inbox),
        tell the citizen, and let the conversation's later messages go on."""
        self.metrics.dead_letters.inc()
        log.error("turn.dead_letter", message_id=message.id, attempts=MAX_BOT_ATTEMPTS, error=error[:200])
        language = message.language if message.language in DEAD_LETTER_TEXT else "zh"
        # The handoff hooks see an ordinary request for a person, with its own reason.
        turn = BotTurn(messages=[{"text": DEAD_LETTER_TEXT[language]}], latest_action="dead_letter",
                       slots_set={"handoff_requested": True, "handoff_reason": DEAD_LETTER_REASON})
        replies = await self._finish(message, turn.messages, turn, turn_state="failed",
                                     record={"dead_letter": {"error": error[:500], "attempts": MAX_BOT_ATTEMPTS}})
        await self._deliver(conversation.id, replies)
        await self.coordination.publish(
            topics.INBOX, {"type": "dead_letter", "conversation_id": conversation.id, "message_id": str(message.id)}
        )

    async def _deliver(self, conversation_id: str, replies: list[Message]) -> None:
        if not replies:
            return
        for reply in replies:
            self.metrics.outbound_messages.labels(reply.channel, reply.sender).inc()
            await self.coordination.publish(
                topics.conversation(conversation_id), {"type": "message", "message": message_view(reply)}
            )
        if self.delivery is not None and self.delivery.queues(replies[0].channel):
            async with self.db.sessions() as session:
                conversation = await session.get(Conversation, conversation_id)
            if conversation is not None:
                await self.delivery.deliver(conversation, replies)

    async def say(self, conversation_id: str, messages: list[OutboundMessage], sender: str,
                  meta: dict[str, Any] | None = None) -> list[Message]:
        """Send messages outside a bot turn (an agent's reply, a notice) on the citizen's channel, like bot replies."""
        async with self.db.sessions() as session, session.begin():
            conversation = await session.get(Conversation, conversation_id)
            if conversation is None:
                raise LookupError(conversation_id)
            last_in = (
                await session.execute(
                    select(Message)
                    .where(Message.conversation_id == conversation_id, Message.direction == "in")
                    .order_by(Message.id.desc())
                    .limit(1)
                )
            ).scalar_one_or_none()
            if last_in is None:
                raise LookupError(f"{conversation_id} has no inbound message to answer")
            full_meta = {"intent": None, "confidence": None, "kb_article_ids": None, "work_order_id": None,
                         "conversation_status": conversation.status, **(meta or {})}
            rows = [self._outbound_row(conversation, last_in, out, full_meta, sender) for out in messages]
            for row in rows:
                row.reply_to_id = None  # not the answer of a turn (the REST channel returns those synchronously)
            session.add_all(rows)
            conversation.last_activity_at = datetime.now(UTC)
            await session.flush()
        await self._deliver(conversation_id, rows)
        return rows

    # ---- the synchronous path (REST channel) --------------------------------------------------------------------

    async def handle(self, inbound: InboundMessage) -> TurnOutcome:
        """Receive, process, and return this message's replies (for channels that answer in the response)."""
        received = await self.receive(inbound)
        await self.process(received.conversation_id)
        async with self.db.sessions() as session:
            replies = list(
                (
                    await session.execute(
                        select(Message)
                        .where(Message.reply_to_id == received.message_id, Message.direction == "out")
                        .order_by(Message.id)
                    )
                ).scalars()
            )
            conversation = await session.get(Conversation, received.conversation_id)
        status = conversation.status if conversation else "bot"
        return TurnOutcome(received.message_id, received.conversation_id, received.duplicate, status, replies)

    # ---- recovery -----------------------------------------------------------------------------------------------

    async def waiting_conversations(self, older_than_seconds: float = 0.0) -> list[str]:
        """Conversations with turns not yet answered (deferred, or left by a crash), oldest first."""
        cutoff = datetime.now(UTC).timestamp() - older_than_seconds
        async with self.db.sessions() as session:
            rows = (
                await session.execute(
                    select(Message.conversation_id, Message.turn_state, Message.created_at)
                    .where(Message.direction == "in", Message.turn_state.in_(WAITING_STATES))
                    .order_by(Message.id)
                )
            ).all()
        self.metrics.deferred_turns.set(sum(1 for r in rows if r.turn_state == "deferred"))
        seen: dict[str, None] = {}
        for conversation_id, state, created_at in rows:
            created = utc(created_at)
            if state == "deferred" or created.timestamp() <= cutoff:
                seen.setdefault(conversation_id, None)
        return list(seen)

    async def history(self, conversation_id: str, limit: int = 200) -> list[Message]:
        async with self.db.sessions() as session:
            rows = (
                await session.execute(
                    select(Message)
                    .where(Message.conversation_id == conversation_id)
                    .order_by(Message.id.desc())
                    .limit(limit)
                )
            ).scalars()
            return list(reversed(list(rows)))
