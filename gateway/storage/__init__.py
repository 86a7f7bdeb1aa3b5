"""Storage: the SQL schema (SQLAlchemy 2, async), migrations (Alembic) and the repositories the pipeline uses."""

from gateway.storage.db import Database
from gateway.storage.models import Base, ChannelIdentity, Contact, Conversation, Message, earlier_inbound_payload

__all__ = ["Base", "ChannelIdentity", "Contact", "Conversation", "Database", "Message", "earlier_inbound_payload"]
