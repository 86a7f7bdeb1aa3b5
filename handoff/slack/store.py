"""Which Slack thread belongs to which conversation, and how far the thread has caught up with it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.clock import utc_now
from gateway.storage.models import Base


class SlackThread(Base):
    __tablename__ = "slack_threads"

    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    channel: Mapped[str] = mapped_column(String(64))
    thread_ts: Mapped[str] = mapped_column(String(32), unique=True)
    # The newest conversation message already shown in the thread (messages are posted in id order, once).
    last_message_id: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
