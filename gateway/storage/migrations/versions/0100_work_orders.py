"""work orders: departments, orders, steps, number sequences, SLA alerts, sync cursors

Revision ID: 0100
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0100"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = ("work_orders",)
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
# Open statuses as literal SQL (kept equal to crm_adapter.models.OPEN_SQL; migrations never import app code).
OPEN_SQL = "status IN ('new', 'assigned', 'in_progress', 'reopened', 'returned')"


def upgrade() -> None:
    op.create_table(
        "departments",
        sa.Column("code", sa.String(48), primary_key=True),
        sa.Column("name_zh", sa.String(100), nullable=False),
        sa.Column("name_en", sa.String(100), nullable=False),
    )
    op.create_table(
        "work_orders",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("number", sa.String(32), nullable=False, unique=True),
        sa.Column("category", sa.String(16), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("location", sa.Text),
        sa.Column(
            "contact_id", sa.String(32), sa.ForeignKey("contacts.id", ondelete="RESTRICT"), nullable=False
        ),
        sa.Column("conversation_id", sa.String(32), sa.ForeignKey("conversations.id", ondelete="SET NULL")),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("department", sa.String(48), sa.ForeignKey("departments.code"), nullable=False),
        sa.Column("priority", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("due_at", TS, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("resolved_at", TS),
        sa.Column("external_ref", sa.String(64)),
        sa.Column("duplicate_of", sa.Integer, sa.ForeignKey("work_orders.id", ondelete="SET NULL")),
        sa.Column("report_count", sa.Integer, nullable=False),
    )
    op.create_index("ix_work_orders_status_due", "work_orders", ["status", "due_at"])
    op.create_index(
        "ix_work_orders_open_due",
        "work_orders",
        ["due_at"],
        sqlite_where=sa.text(OPEN_SQL),
        postgresql_where=sa.text(OPEN_SQL),
    )
    op.create_index("ix_work_orders_department_status", "work_orders", ["department", "status", "due_at"])
    op.create_index("ix_work_orders_contact_created", "work_orders", ["contact_id", "created_at"])
    op.create_index("ix_work_orders_created", "work_orders", ["created_at"])
    op.create_index("ix_work_orders_external_ref", "work_orders", ["external_ref"])
    op.create_table(
        "work_order_steps",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "work_order_id", sa.Integer, sa.ForeignKey("work_orders.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("actor_role", sa.String(16), nullable=False),
        sa.Column("action", sa.String(24), nullable=False),
        sa.Column("from_status", sa.String(16)),
        sa.Column("to_status", sa.String(16)),
        sa.Column("from_department", sa.String(48)),
        sa.Column("to_department", sa.String(48)),
        sa.Column("note", sa.Text),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_work_order_steps_order", "work_order_steps", ["work_order_id", "id"])
    op.create_table(
        "work_order_sequences",
        sa.Column("day", sa.String(8), primary_key=True),
        sa.Column("last", sa.Integer, nullable=False),
    )
    op.create_table(
        "work_order_alerts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "work_order_id", sa.Integer, sa.ForeignKey("work_orders.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("due_at", TS, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("work_order_id", "level", "due_at", name="uq_work_order_alert"),
    )
    op.create_table(
        "crm_sync_cursors",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(64), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("crm_sync_cursors")
    op.drop_table("work_order_alerts")
    op.drop_table("work_order_sequences")
    op.drop_table("work_order_steps")
    op.drop_table("work_orders")
    op.drop_table("departments")
