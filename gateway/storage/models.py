"""The relational schema: contacts and their channel identities, conversations and messages.

One citizen is one contact whatever the channel (no information islands); a conversation belongs to a contact and
a channel; messages are ordered by their integer id, which is also the arrival order used for per-conversation
processing.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from gateway.clock import utc_now


def _uuid() -> str:
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, datetime: DateTime(timezone=True)}


class Contact(Base):
    __tablename__ = "contacts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=_uuid)
    display_name: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(32), index=True)
    language: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)

    identities: Mapped[list[ChannelIdentity]] = relationship(back_populates="contact")


class ChannelIdentity(Base):
    """How a contact is known on one channel (a phone number on SMS, a chat id on Telegram, a browser session)."""

    __tablename__ = "channel_identities"
    __table_args__ = (UniqueConstraint("channel", "channel_account", "external_user_id", name="uq_identity"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    contact_id: Mapped[str] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(32))
    channel_account: Mapped[str] = mapped_column(String(128))
    external_user_id: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)

    contact: Mapped[Contact] = relationship(back_populates="identities")


class Conversation(Base):
    """A thread with one contact on one channel. Status: bot, pending, open, resolved."""

    __tablename__ = "conversations"
    __table_args__ = (
        Index("ix_conversations_identity_activity", "identity_id", "last_activity_at"),
        Index("ix_conversations_status_activity", "status", "last_activity_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=_uuid)
    contact_id: Mapped[str] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    identity_id: Mapped[int] = mapped_column(ForeignKey("channel_identities.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="bot")
    language: Mapped[str] = mapped_column(String(8), default="zh")
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    last_activity_at: Mapped[datetime] = mapped_column(default=utc_now)


class Message(Base):
    """One message in or out. Inbound rows carry a turn state; outbound rows a delivery state."""

    __tablename__ = "messages"
    __table_args__ = (
        # Exactly-once: a provider's redelivery of the same message id hits this key.
        UniqueConstraint("channel", "channel_account", "direction", "external_id", name="uq_message_external"),
        Index("ix_messages_conversation", "conversation_id", "id"),
        Index("ix_messages_turn_state", "turn_state"),
        # A period's citizens' messages (reports/): a range on created_at within one direction.
        Index("ix_messages_direction_created", "direction", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    direction: Mapped[str] = mapped_column(String(3))  # "in" or "out"
    sender: Mapped[str] = mapped_column(String(16))  # citizen, bot, agent, system
    channel: Mapped[str] = mapped_column(String(32))
    channel_account: Mapped[str] = mapped_column(String(128))
    external_id: Mapped[str | None] = mapped_column(String(256))
    reply_to_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"), index=True)
    text: Mapped[str | None] = mapped_column(Text)
    original_text: Mapped[str | None] = mapped_column(Text)  # as written, before Traditional→Simplified
    language: Mapped[str | None] = mapped_column(String(8))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)  # buttons, image, attachments, meta, raw
    # Inbound: received → done, or deferred while the bot is unreachable (retried later, never dropped).
    turn_state: Mapped[str | None] = mapped_column(String(16))
    # Outbound: queued → sent → delivered, or failed.
    delivery_state: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


async def earlier_inbound_payload(
    session: AsyncSession, conversation_id: str, before_message_id: int
) -> dict[str, Any] | None:
    """The payload of the citizen's last message before `before_message_id` in the conversation (None: none)."""
    payload: dict[str, Any] | None = (
        await session.execute(
            select(Message.payload)
            .where(Message.conversation_id == conversation_id, Message.direction == "in",
                   Message.id < before_message_id)
            .order_by(Message.id.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    return payload
