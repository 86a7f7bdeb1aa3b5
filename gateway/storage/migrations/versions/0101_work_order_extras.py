"""work orders: contact phone, photos, satisfaction (回访) and the Request Tracker push-pending flag

Revision ID: 0101
Revises: 0100
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0101"
down_revision: str | None = "0100"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("work_orders", sa.Column("phone", sa.String(32)))
    op.add_column("work_orders", sa.Column("photos", sa.JSON))
    op.add_column("work_orders", sa.Column("satisfaction", sa.Integer))
    op.add_column(
        "work_orders", sa.Column("push_pending", sa.Boolean, nullable=False, server_default=sa.false())
    )
    op.create_index("ix_work_orders_push_pending", "work_orders", ["push_pending", "id"])


def downgrade() -> None:
    op.drop_index("ix_work_orders_push_pending", table_name="work_orders")
    for name in ("push_pending", "satisfaction", "photos", "phone"):
        op.drop_column("work_orders", name)
