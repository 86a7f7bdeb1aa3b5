"""The outbox's worker: expands queued replies into vendor calls, sends each recipient's head row, retries with
backoff, applies receipts, and lets a channel claim the replies it answers itself."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from gateway import topics
from gateway.clock import utc, utc_now
from gateway.connectors import PushConnector, RenderContext
from gateway.coordination import Coordination, LockTimeout
from gateway.hooks import ReplyDeliverer
from gateway.message import DeliveryResult, OutboundMessage
from gateway.metrics import Metrics
from gateway.optouts import set_opt_out
from gateway.outbox.proactive import enqueue_proactive
from gateway.outbox.tables import OutboxRow
from gateway.storage import ChannelIdentity, Conversation, Database, Message, earlier_inbound_payload

log = structlog.get_logger(__name__)

EXPAND_LOCK = "outbox:expand"
LEASE_SECONDS = 60.0
ACTIVE_STATES = ("queued", "sending")
# A receipt never moves a row backwards (callbacks arrive out of order); failed and delivered are final.
_RANK = {"queued": 0, "sending": 0, "sent": 1, "delivered": 2, "failed": 2}




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


@dataclass
class Outbox:
    """The delivery worker of the pushing channels (see the package docstring); also what the pipeline asks whether
    a channel's replies are queued, and tells when they were stored."""

    db: Database
    coordination: Coordination
    metrics: Metrics
    connectors: dict[str, PushConnector]
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    poll_seconds: float = 1.0
    concurrency: int = 20
    rng: random.Random = field(default_factory=random.Random)
    # Served channels that cannot push: a proactive message for them is kept in the conversation.
    stored_channels: frozenset[str] = frozenset()
    # A channel that answers some replies itself (WeChat's passive reply) is told first; it wakes the outbox.
    deliverers: dict[str, ReplyDeliverer] = field(default_factory=dict)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _inflight: int = 0

    def queues(self, channel: str) -> bool:
        """Whether replies on this channel are sent by the outbox (stored "queued") or read from storage."""
        return channel in self.connectors

    async def deliver(self, conversation: Conversation, replies: list[Message]) -> None:
        """Replies on one of the outbox's channels were stored: the channel's own deliverer, else the worker."""
        deliverer = self.deliverers.get(replies[0].channel) if replies else None
        if deliverer is None or not await deliverer(conversation, replies):
            self.wake()

    # A notice for the citizen: gateway/outbox/proactive.py says how and when it goes.
    enqueue_proactive = enqueue_proactive

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
        async with self.coordination.lock(EXPAND_LOCK, hold_seconds=30, wait_seconds=30):
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
            context = RenderContext(
                # A channel with threads of its own (e-mail): the reply answers the citizen's last message.
                thread=await self._thread_of(message) if connector.capabilities.threads else {},
                # Outside the channel's reply window: the connector's template rendering (see proactive.py).
                template_kind=str(proactive.get("kind")) if proactive.get("template") else None,
            )
            payloads = connector.render(recipient, outbound, language, context)
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
        await self.coordination.publish(topics.conversation(conversation_id), event)
        if state == "failed":
            await self.coordination.publish(topics.INBOX, event)

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

    # -- replies a channel answers itself -----------------------------------------------------------------------

    async def claim_unsent(self, message_ids: list[int], wait_seconds: float) -> bool:
        """Mark these replies sent by their channel itself (WeChat's passive reply, in its webhook's response) if
        the worker has not taken them yet: under the expand lock, so a reply goes one way only."""
        try:
            async with self.coordination.lock(EXPAND_LOCK, hold_seconds=30, wait_seconds=wait_seconds):
                async with self.db.sessions() as session, session.begin():
                    rendered = (await session.execute(
                        select(func.count()).select_from(OutboxRow).where(OutboxRow.message_id.in_(message_ids))
                    )).scalar_one()
                    queued = (await session.execute(
                        select(func.count()).select_from(Message)
                        .where(Message.id.in_(message_ids), Message.delivery_state == "queued")
                    )).scalar_one()
                    if rendered or queued != len(message_ids):
                        return False
                    await session.execute(
                        update(Message).where(Message.id.in_(message_ids)).values(delivery_state="sent")
                    )
        except LockTimeout:
            return False
        return True

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
