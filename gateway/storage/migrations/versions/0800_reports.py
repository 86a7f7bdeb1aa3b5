"""reports: indexes for a period's figures (citizens' messages by time, handoffs by time)

Revision ID: 0800
Revises: 0001
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0800"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = ("reports",)
depends_on: str | Sequence[str] | None = ("0400",)  # conversation_events is the handoff's


def upgrade() -> None:
    op.create_index("ix_messages_direction_created", "messages", ["direction", "created_at"])
    op.create_index("ix_conversation_events_kind_status_created", "conversation_events",
                    ["kind", "to_status", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_conversation_events_kind_status_created", "conversation_events")
    op.drop_index("ix_messages_direction_created", "messages")
