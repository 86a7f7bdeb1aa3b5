"""One citizen across channels: contacts with the same verified phone number become one contact with one history.

A phone number is verified when the channel vouches for it: the sender of an SMS (the carrier), a Telegram user who
shared their own contact. When a second contact turns up with a verified number another contact already has, the
newer contact is merged into the older one: its channel identities, conversations, work orders and everything else
pointing at it move over, and the merge is recorded (`contact_merges`) so references kept elsewhere still resolve.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from sqlalchemy import DateTime, ForeignKey, Integer, String, delete, inspect, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql import column, table

from gateway.clock import utc
from gateway.hooks import Intercept
from gateway.optouts import ChannelOptOut
from gateway.storage import Contact, Conversation, Database, Message
from gateway.storage.models import Base

log = structlog.get_logger(__name__)


class ContactMerge(Base):
    __tablename__ = "contact_merges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    from_contact_id: Mapped[str] = mapped_column(String(32), index=True)
    into_contact_id: Mapped[str] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    phone: Mapped[str] = mapped_column(String(32))
    merged_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=lambda: datetime.now(UTC))


def normalise_phone(raw: str) -> str | None:
    """E.164-ish: '+' and digits ('8613800000001' from Telegram becomes '+8613800000001')."""
    digits = re.sub(r"\D", "", raw)
    if not 6 <= len(digits) <= 15:
        return None
    return "+" + digits


def _contact_references(connection: Connection) -> list[tuple[str, str]]:
    """(table, column) of every foreign key to contacts.id in the live schema (other capabilities' tables too)."""
    inspector = inspect(connection)
    found = []
    for name in inspector.get_table_names():
        for fk in inspector.get_foreign_keys(name):
            if fk.get("referred_table") == "contacts" and len(fk.get("constrained_columns") or []) == 1:
                found.append((name, fk["constrained_columns"][0]))
    return found


async def merge_by_phone(db: Database, contact_id: str, phone: str) -> str:
    """Give the contact its verified phone; merge it into an older contact with the same one. Returns the survivor."""
    async with db.sessions() as session, session.begin():
        contact = await session.get(Contact, contact_id)
        if contact is None:
            return contact_id
        if contact.phone is None:
            contact.phone = phone
        elif contact.phone != phone:
            return contact_id  # a contact keeps the first verified number it was given
        other = (
            await session.execute(
                select(Contact)
                .where(Contact.phone == phone, Contact.id != contact_id)
                .order_by(Contact.created_at, Contact.id)
                .limit(1)
            )
        ).scalar_one_or_none()
        if other is None:
            return contact_id
        survivor, merged = (other, contact) if _older(other, contact) else (contact, other)
        connection = await session.connection()
        for table_name, column_name in await connection.run_sync(_contact_references):
            if table_name == "contact_merges":
                continue
            target = table(table_name, column(column_name))
            if table_name == "channel_opt_outs":
                # One opt-out row per contact and channel: the survivor's own choice wins where both have one.
                await _move_opt_outs(session, merged.id, survivor.id)
                continue
            await session.execute(
                update(target).where(target.c[column_name] == merged.id).values({column_name: survivor.id})
            )
        survivor.display_name = survivor.display_name or merged.display_name
        survivor.language = survivor.language or merged.language
        merged.phone = None  # so it is never found again; the merge record points at the survivor
        session.add(ContactMerge(from_contact_id=merged.id, into_contact_id=survivor.id, phone=phone))
    log.info("contact.merged", into=survivor.id, merged=merged.id)
    return survivor.id


def _older(a: Contact, b: Contact) -> bool:
    return (utc(a.created_at), a.id) <= (utc(b.created_at), b.id)


async def _move_opt_outs(session: AsyncSession, from_id: str, into_id: str) -> None:
    kept = set((await session.execute(select(ChannelOptOut.channel).where(ChannelOptOut.contact_id == into_id))
                ).scalars())
    if kept:
        await session.execute(
            delete(ChannelOptOut).where(ChannelOptOut.contact_id == from_id, ChannelOptOut.channel.in_(kept))
        )
    await session.execute(
        update(ChannelOptOut).where(ChannelOptOut.contact_id == from_id).values(contact_id=into_id)
    )


@dataclass
class ContactMergeHook:
    """Run before the bot: a message carrying a phone its connector verified with the vendor (the stored
    `verified_phone` claim, never anything from the message's metadata) merges contacts."""

    db: Database

    async def __call__(self, conversation: Conversation, message: Message, text: str) -> Intercept | None:
        raw = (message.payload or {}).get("verified_phone")
        phone = normalise_phone(str(raw)) if raw else None
        if phone is None:
            return None
        survivor = await merge_by_phone(self.db, conversation.contact_id, phone)
        conversation.contact_id = survivor  # the bot is told the one contact from now on
        return None
