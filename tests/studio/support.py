"""Logged turns written straight into the gateway's tables, the way the pipeline stores them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.storage import ChannelIdentity, Contact, Conversation, Database, Message


async def conversation(db: Database) -> str:
    async with db.sessions() as session, session.begin():
        contact = Contact()
        session.add(contact)
        await session.flush()
        identity = ChannelIdentity(contact_id=contact.id, channel="rest", channel_account="rest",
                                   external_user_id=uuid.uuid4().hex)
        session.add(identity)
        await session.flush()
        conv = Conversation(contact_id=contact.id, identity_id=identity.id, channel="rest")
        session.add(conv)
        await session.flush()
        return conv.id


def turn_row(conversation_id: str, text: str, intent: str | None, confidence: float | None,
             minutes_ago: float = 0, status: str = "bot") -> Message:
    meta: dict[str, Any] = {"intent": intent, "confidence": confidence, "kb_article_ids": None,
                            "work_order_id": None, "conversation_status": status}
    return Message(
        conversation_id=conversation_id, direction="in", sender="citizen", channel="rest", channel_account="rest",
        external_id=uuid.uuid4().hex, text=text, language="zh", payload={"meta": meta}, turn_state="done",
        created_at=datetime.now(UTC) - timedelta(minutes=minutes_ago),
    )


async def log_turns(db: Database, conversation_id: str, turns: list[tuple[str, str | None, float | None]]) -> list[int]:
    """Store (text, intent, confidence) turns in order; returns their ids."""
    async with db.sessions() as session, session.begin():
        rows = [turn_row(conversation_id, text, intent, confidence, minutes_ago=len(turns) - i)
                for i, (text, intent, confidence) in enumerate(turns)]
        session.add_all(rows)
        await session.flush()
        return [row.id for row in rows]
