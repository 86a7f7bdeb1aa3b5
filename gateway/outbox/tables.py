"""The outbox's table: one row per vendor call for one outbound message."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.clock import utc_now
from gateway.storage.models import Base


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
