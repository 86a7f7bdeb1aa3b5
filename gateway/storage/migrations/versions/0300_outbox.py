"""delivery: the outbox (one row per vendor send), opt-outs per contact and channel, contact merges

Revision ID: 0300
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0300"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = ("delivery",)
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("message_id", sa.Integer, sa.ForeignKey("messages.id", ondelete="CASCADE"), nullable=False),
        sa.Column("part", sa.Integer, nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("channel_account", sa.String(128), nullable=False),
        sa.Column("recipient", sa.String(256), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("claimed_until", TS),
        sa.Column("external_id", sa.String(256)),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("sent_at", TS),
        sa.UniqueConstraint("message_id", "part", name="uq_outbox_message_part"),
    )
    op.create_index("ix_outbox_state_due", "outbox", ["state", "next_attempt_at"])
    op.create_index("ix_outbox_recipient", "outbox", ["channel", "channel_account", "recipient", "id"])
    op.create_index("ix_outbox_external", "outbox", ["channel", "external_id"])
    op.create_table(
        "channel_opt_outs",
        sa.Column("contact_id", sa.String(32), sa.ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("channel", sa.String(32), primary_key=True),
        sa.Column("opted_out", sa.Boolean, nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("changed_at", TS, nullable=False),
    )
    op.create_table(
        "contact_merges",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("from_contact_id", sa.String(32), nullable=False),
        sa.Column("into_contact_id", sa.String(32), sa.ForeignKey("contacts.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("phone", sa.String(32), nullable=False),
        sa.Column("merged_at", TS, nullable=False),
    )
    op.create_index("ix_contact_merges_from", "contact_merges", ["from_contact_id"])


def downgrade() -> None:
    op.drop_table("contact_merges")
    op.drop_table("channel_opt_outs")
    op.drop_table("outbox")
