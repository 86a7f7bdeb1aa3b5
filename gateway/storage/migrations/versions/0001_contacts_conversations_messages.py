"""contacts, channel identities, conversations and messages

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "contacts",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("display_name", sa.String(200)),
        sa.Column("phone", sa.String(32)),
        sa.Column("language", sa.String(8)),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_contacts_phone", "contacts", ["phone"])
    op.create_table(
        "channel_identities",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("contact_id", sa.String(32), sa.ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("channel_account", sa.String(128), nullable=False),
        sa.Column("external_user_id", sa.String(256), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("channel", "channel_account", "external_user_id", name="uq_identity"),
    )
    op.create_index("ix_channel_identities_contact_id", "channel_identities", ["contact_id"])
    op.create_table(
        "conversations",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("contact_id", sa.String(32), sa.ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False),
        sa.Column(
            "identity_id", sa.Integer, sa.ForeignKey("channel_identities.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_activity_at", TS, nullable=False),
    )
    op.create_index("ix_conversations_contact_id", "conversations", ["contact_id"])
    op.create_index("ix_conversations_identity_activity", "conversations", ["identity_id", "last_activity_at"])
    op.create_index("ix_conversations_status_activity", "conversations", ["status", "last_activity_at"])
    op.create_table(
        "messages",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "conversation_id", sa.String(32), sa.ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("direction", sa.String(3), nullable=False),
        sa.Column("sender", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("channel_account", sa.String(128), nullable=False),
        sa.Column("external_id", sa.String(256)),
        sa.Column("reply_to_id", sa.Integer, sa.ForeignKey("messages.id", ondelete="SET NULL")),
        sa.Column("text", sa.Text),
        sa.Column("original_text", sa.Text),
        sa.Column("language", sa.String(8)),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("turn_state", sa.String(16)),
        sa.Column("delivery_state", sa.String(16)),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("channel", "channel_account", "direction", "external_id", name="uq_message_external"),
    )
    op.create_index("ix_messages_conversation", "messages", ["conversation_id", "id"])
    op.create_index("ix_messages_turn_state", "messages", ["turn_state"])
    op.create_index("ix_messages_reply_to_id", "messages", ["reply_to_id"])


def downgrade() -> None:
    op.drop_table("messages")
    op.drop_table("conversations")
    op.drop_table("channel_identities")
    op.drop_table("contacts")
