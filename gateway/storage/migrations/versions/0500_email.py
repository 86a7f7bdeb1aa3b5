"""email: the IMAP bookkeeping per mailbox (UIDVALIDITY and the last UID taken), so a restart takes nothing twice

Revision ID: 0500
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0500"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = ("email",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "email_mailboxes",
        sa.Column("mailbox", sa.String(400), primary_key=True),
        sa.Column("uidvalidity", sa.BigInteger, nullable=False),
        sa.Column("last_uid", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("email_mailboxes")
