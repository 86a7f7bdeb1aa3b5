"""Tables of the handoff: agents and their sessions, each conversation's handoff state, its events, CSAT scores.

Created by the Alembic branch `handoff` (0400). A conversation's status itself stays on `conversations.status`
(the pipeline reads it to keep the bot quiet); `handoffs` holds who has it, since when, and what the citizen was told.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.clock import utc_now
from gateway.storage.models import Base

ROLES = ("agent", "supervisor", "content_editor", "admin")


class Agent(Base):
    """A member of staff who logs in to the inbox (or the studio): role, departments, capacity, presence."""

    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(32), default="agent")
    departments: Mapped[list[str]] = mapped_column(JSON, default=list)
    capacity: Mapped[int] = mapped_column(Integer, default=5)
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    language: Mapped[str] = mapped_column(String(8), default="zh")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class AgentSession(Base):
    """A server-side login session; the cookie carries the random id, the table only its SHA-256."""

    __tablename__ = "agent_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Handoff(Base):
    """The person side of one conversation: queue, assignee, unread count, notices sent, survey."""

    __tablename__ = "handoffs"
    __table_args__ = (Index("ix_handoffs_agent", "agent_id"), Index("ix_handoffs_department", "department"))

    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    department: Mapped[str] = mapped_column(String(64))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    # The status this table last saw: a difference means the pipeline moved it (resolved → bot on a new message).
    last_status: Mapped[str] = mapped_column(String(16), default="bot")
    pending_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    first_response_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    wait_notice_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    unread: Mapped[int] = mapped_column(Integer, default=0)
    survey: Mapped[str | None] = mapped_column(String(16))  # "asked" while the 1–5 question waits for an answer
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class ConversationEvent(Base):
    """Everything that happened to a conversation besides messages: status changes, assignment, notes, CSAT."""

    __tablename__ = "conversation_events"
    __table_args__ = (
        Index("ix_conversation_events_conversation", "conversation_id", "id"),
        # A period's handoffs (reports/): status changes to pending, by time.
        Index("ix_conversation_events_kind_status_created", "kind", "to_status", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # status, assign, transfer, note, csat
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(64))  # "agent:3", "bot", "citizen", "system"
    reason: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class CsatScore(Base):
    """A citizen's 1–5 answer to the satisfaction question after a resolved handoff."""

    __tablename__ = "csat_scores"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    score: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
