"""Work-order rows (`crm_adapter.models`) as the records that cross the backend interface, and what every module
writing those rows shares: the dialect's INSERT (for upserts), taking an order's row for a change, adding a step.

Taking the row is a write first (see `lock_order`): on PostgreSQL that takes the row lock; on SQLite it takes the
database's write lock before anything is read, so two writers queue on busy_timeout instead of failing with
"database is locked" when a read transaction tries to upgrade.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from crm_adapter.backend import StepRecord, WorkOrderNotFound, WorkOrderRecord
from crm_adapter.models import WorkOrder, WorkOrderStep
from crm_adapter.workflow import Actor
from gateway.clock import utc
from gateway.storage import Database

_STEP_FIELDS = tuple(f.name for f in fields(StepRecord))
_ORDER_FIELDS = tuple(f.name for f in fields(WorkOrderRecord) if f.name not in ("steps", "photos", "push_pending"))


def insert(db: Database, model: Any) -> Any:
    """INSERT into `model`'s table in the database's dialect (with on_conflict_do_update/do_nothing)."""
    return (sqlite.insert if db.is_sqlite else postgresql.insert)(model)


def _columns(row: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """The row's values of these columns, datetimes as aware UTC (SQLite hands back naive ones)."""
    values = {name: getattr(row, name) for name in names}
    return {name: utc(v) if isinstance(v, datetime) else v for name, v in values.items()}


def step_record(step: WorkOrderStep) -> StepRecord:
    return StepRecord(**_columns(step, _STEP_FIELDS))


def order_record(order: WorkOrder, steps: list[WorkOrderStep] | None = None) -> WorkOrderRecord:
    return WorkOrderRecord(
        **_columns(order, _ORDER_FIELDS),
        steps=[step_record(s) for s in steps or []],
        photos=tuple(order.photos or ()),
        push_pending=bool(order.push_pending),
    )


async def lock_order(session: AsyncSession, number: str) -> WorkOrder:
    """The order's row as it is now, after a write to it (see the module docstring); WorkOrderNotFound if none."""
    touched = await session.execute(
        update(WorkOrder)
        .where(WorkOrder.number == number)
        .values(updated_at=WorkOrder.updated_at)
        .returning(WorkOrder.id)
    )
    order_id = touched.scalar_one_or_none()
    if order_id is None:
        raise WorkOrderNotFound(number)
    order = await session.get(WorkOrder, order_id, populate_existing=True)
    assert order is not None
    return order


def add_step(
    session: AsyncSession,
    order: WorkOrder,
    actor: Actor,
    action: str,
    at: datetime,
    *,
    from_status: str | None = None,
    to_status: str | None = None,
    from_department: str | None = None,
    to_department: str | None = None,
    note: str | None = None,
) -> WorkOrderStep:
    """Add one entry to the order's history (its id is set at the next flush)."""
    step = WorkOrderStep(
        work_order_id=order.id,
        actor=actor.name,
        actor_role=actor.role.value,
        action=action,
        from_status=from_status,
        to_status=to_status,
        from_department=from_department,
        to_department=to_department,
        note=note,
        created_at=at,
    )
    session.add(step)
    return step


async def read_record(session: AsyncSession, order: WorkOrder) -> WorkOrderRecord:
    """The order with its whole history, as it stands in this session."""
    await session.flush()
    steps = (
        await session.execute(
            select(WorkOrderStep).where(WorkOrderStep.work_order_id == order.id).order_by(WorkOrderStep.id)
        )
    ).scalars()
    return order_record(order, list(steps))
