"""The change feed of our database: every status or department change of an order (a step with a to_status),
oldest first, after an opaque cursor (the step id). Both backends answer `changes_since` from it (Request Tracker's
changes are applied to our database first), and the citizens' notices read it directly."""

from __future__ import annotations

from sqlalchemy import func, select

from crm_adapter.backend import Change, ChangeBatch
from crm_adapter.models import WorkOrder, WorkOrderStep
from gateway.clock import utc
from gateway.storage import Database


class ChangeFeed:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def since(self, cursor: str | None, limit: int = 100) -> ChangeBatch:
        """The changes after `cursor` (None: from the start), at most `limit`, oldest first."""
        after = int(cursor) if cursor else 0
        query = (
            select(WorkOrderStep, WorkOrder.number, WorkOrder.department)
            .join(WorkOrder, WorkOrder.id == WorkOrderStep.work_order_id)
            .where(WorkOrderStep.id > after, WorkOrderStep.to_status.is_not(None))
            .order_by(WorkOrderStep.id)
            .limit(limit)
        )
        async with self.db.sessions() as session:
            rows = (await session.execute(query)).all()
        changes = [
            Change(
                cursor=str(step.id),
                number=number,
                action=step.action,
                from_status=step.from_status,
                to_status=step.to_status,
                department=step.to_department or department,
                actor=step.actor,
                at=utc(step.created_at),
            )
            for step, number, department in rows
        ]
        return ChangeBatch(changes, changes[-1].cursor if changes else cursor)

    async def latest_cursor(self) -> str:
        """The cursor of the newest step: "now", for a reader that starts fresh."""
        async with self.db.sessions() as session:
            return str((await session.execute(select(func.max(WorkOrderStep.id)))).scalar_one_or_none() or 0)
