"""The work-order tables: departments, work orders, their steps, per-day number sequences, SLA alerts, sync cursors.

They live on the gateway's one `Base` (same database, same migrations); the migration that creates them is
`gateway/storage/migrations/versions/0100_work_orders.py` (branch "work_orders"). All datetimes are stored in UTC.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false, text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.clock import utc_now
from gateway.storage.models import Base

# Statuses in which an order is still somebody's job; the overdue query and the SLA watcher look only at these.
OPEN_STATUSES: tuple[str, ...] = ("new", "assigned", "in_progress", "reopened", "returned")
# The same as SQL with literal values: the partial index below is only usable when the query says exactly this
# (a planner cannot prove a partial index's condition from bound parameters).
OPEN_SQL = "status IN ('new', 'assigned', 'in_progress', 'reopened', 'returned')"


class Department(Base):
    __tablename__ = "departments"

    code: Mapped[str] = mapped_column(String(48), primary_key=True)
    name_zh: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(100))


class WorkOrder(Base):
    __tablename__ = "work_orders"
    __table_args__ = (
        # "Overdue": status IN (open statuses) AND due_at < now: one index range per open status, never a scan.
        Index("ix_work_orders_status_due", "status", "due_at"),
        # The open orders by deadline (a few percent of all): "the first page of overdue orders, most overdue
        # first" reads the first rows of this index and stops.
        Index(
            "ix_work_orders_open_due", "due_at", sqlite_where=text(OPEN_SQL), postgresql_where=text(OPEN_SQL)
        ),
        Index("ix_work_orders_department_status", "department", "status", "due_at"),
        # The duplicate check and "my latest report": one contact's recent orders.
        Index("ix_work_orders_contact_created", "contact_id", "created_at"),
        Index("ix_work_orders_created", "created_at"),
        Index("ix_work_orders_external_ref", "external_ref"),
        # Orders Request Tracker did not take when they were filed, oldest first (pushed again by the sync).
        Index("ix_work_orders_push_pending", "push_pending", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    category: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    location: Mapped[str | None] = mapped_column(Text)  # free text, kept whole
    contact_id: Mapped[str] = mapped_column(ForeignKey("contacts.id", ondelete="RESTRICT"))
    conversation_id: Mapped[str | None] = mapped_column(ForeignKey("conversations.id", ondelete="SET NULL"))
    channel: Mapped[str] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(8), default="zh")
    department: Mapped[str] = mapped_column(ForeignKey("departments.code"))
    priority: Mapped[str] = mapped_column(String(8), default="normal")
    status: Mapped[str] = mapped_column(String(16), default="new")
    due_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)
    resolved_at: Mapped[datetime | None]
    external_ref: Mapped[str | None] = mapped_column(String(64))  # the RT ticket id when RT is the backend
    duplicate_of: Mapped[int | None] = mapped_column(ForeignKey("work_orders.id", ondelete="SET NULL"))
    report_count: Mapped[int] = mapped_column(Integer, default=1)  # repeated reports linked to this order
    phone: Mapped[str | None] = mapped_column(String(32))  # the contact phone the citizen gave (or the channel's)
    photos: Mapped[list[str] | None] = mapped_column(JSON)  # attachment refs (DATA_DIR/media) or URLs
    satisfaction: Mapped[int | None] = mapped_column(Integer)  # 1–5 from the 回访 after closing; the latest answer
    # True while Request Tracker has not taken the order (it was down at filing); the RT sync pushes it later.
    push_pending: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class WorkOrderStep(Base):
    """One entry of an order's history: who did what when (status change, note, reassignment, alert, link)."""

    __tablename__ = "work_order_steps"
    __table_args__ = (Index("ix_work_order_steps_order", "work_order_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    work_order_id: Mapped[int] = mapped_column(ForeignKey("work_orders.id", ondelete="CASCADE"))
    actor: Mapped[str] = mapped_column(String(100))
    actor_role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(24))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    from_department: Mapped[str | None] = mapped_column(String(48))
    to_department: Mapped[str | None] = mapped_column(String(48))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class WorkOrderSequence(Base):
    """The last number handed out per day; bumped with an upsert in the order's own transaction."""

    __tablename__ = "work_order_sequences"

    day: Mapped[str] = mapped_column(String(8), primary_key=True)  # YYYYMMDD in the city's time zone
    last: Mapped[int] = mapped_column(Integer)


class WorkOrderAlert(Base):
    """An SLA reminder or overdue alarm raised once per order, level and deadline (a new deadline re-arms it)."""

    __tablename__ = "work_order_alerts"
    __table_args__ = (UniqueConstraint("work_order_id", "level", "due_at", name="uq_work_order_alert"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    work_order_id: Mapped[int] = mapped_column(ForeignKey("work_orders.id", ondelete="CASCADE"))
    level: Mapped[str] = mapped_column(String(16))  # reminder, overdue
    due_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class SyncCursor(Base):
    """Where a reader of a feed stopped (RT's last transaction id, the citizens' notices' last step), so no change is
    lost or read twice."""

    __tablename__ = "crm_sync_cursors"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)
