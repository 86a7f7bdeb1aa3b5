"""SLA alerts in our database: claim the open orders whose deadline is near (reminder) or past (overdue), once per
order, level and deadline even with several watchers (a row in work_order_alerts, unique on the three), and add a
step to each claimed order's history. The SLA watcher (`crm_adapter.watcher`) turns the claims into events."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import exists, select, text

from crm_adapter.backend import WorkOrderRecord
from crm_adapter.models import OPEN_SQL, WorkOrder, WorkOrderAlert
from crm_adapter.rows import add_step, insert, order_record
from crm_adapter.workflow import SYSTEM
from gateway.clock import iso, utc, utc_now
from gateway.storage import Database


class SlaAlerts:
    def __init__(self, db: Database, clock: Callable[[], datetime] = utc_now) -> None:
        self.db = db
        self.clock = clock

    async def claim(
        self, level: str, due_before: datetime, due_from: datetime | None = None, limit: int = 500
    ) -> list[WorkOrderRecord]:
        """Open orders due in [due_from, due_before) not yet alerted at `level` for their current deadline: record
        the alert and a step, and return them (the ones another watcher claimed first are left out)."""
        already = exists().where(
            WorkOrderAlert.work_order_id == WorkOrder.id,
            WorkOrderAlert.level == level,
            WorkOrderAlert.due_at == WorkOrder.due_at,
        )
        candidates_query = (
            select(WorkOrder.id, WorkOrder.due_at)
            .where(text(OPEN_SQL), WorkOrder.due_at < utc(due_before), ~already)
            .order_by(WorkOrder.due_at)
            .limit(limit)
        )
        if due_from is not None:
            candidates_query = candidates_query.where(WorkOrder.due_at >= utc(due_from))
        async with self.db.sessions() as session:
            candidates = (await session.execute(candidates_query)).all()
        if not candidates:
            return []
        now = self.clock()
        async with self.db.sessions() as session, session.begin():
            stmt = insert(self.db, WorkOrderAlert).values(
                [{"work_order_id": oid, "level": level, "due_at": due, "created_at": now} for oid, due in candidates]
            )
            stmt = stmt.on_conflict_do_nothing(index_elements=["work_order_id", "level", "due_at"])
            claimed_ids = [r[0] for r in (await session.execute(stmt.returning(WorkOrderAlert.work_order_id))).all()]
            if not claimed_ids:
                return []
            orders = list(
                (
                    await session.execute(
                        select(WorkOrder).where(WorkOrder.id.in_(claimed_ids)).order_by(WorkOrder.due_at)
                    )
                ).scalars()
            )
            for order in orders:
                note = f"{level}: due {iso(order.due_at)}"
                add_step(session, order, SYSTEM, f"sla_{level}", self.clock(), note=note)
            return [order_record(o) for o in orders]
