"""The embedded backend: work orders in the project's own database (SQLite or PostgreSQL), the default.

Concurrency: every change runs in one transaction whose first statement is a write (the per-day number upsert,
or a
touch of the order's row). On PostgreSQL that takes the row lock; on SQLite it takes the database's write lock
before
anything is read, so two writers queue on busy_timeout instead of failing with "database is locked" when a
read
transaction tries to upgrade. Numbers come from `work_order_sequences(day, last)`, bumped with
INSERT … ON CONFLICT DO UPDATE … RETURNING in the order's own transaction: unique and gap-free per day.

The optional `mirror` is told about every change inside the transaction, before commit (the RT adapter pushes
the
change to Request Tracker there); if it raises, nothing is changed here either.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import exists, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm_adapter.backend import (
    Change,
    ChangeBatch,
    InvalidWorkOrder,
    NewWorkOrder,
    OrderFilter,
    StepRecord,
    WorkOrderNotFound,
    WorkOrderRecord,
)
from crm_adapter.models import (
    OPEN_SQL,
    Department,
    SyncCursor,
    WorkOrder,
    WorkOrderAlert,
    WorkOrderSequence,
    WorkOrderStep,
)
from crm_adapter.routing import DepartmentInfo
from crm_adapter.workflow import (
    SYSTEM,
    Actor,
    Category,
    DispatchMode,
    Priority,
    Status,
    WorkflowError,
    check_transition,
    dispatch_target,
)
from gateway.clock import utc, utc_now, utc_or_none
from gateway.storage import Contact, Database

log = structlog.get_logger(__name__)





class Mirror(Protocol):
    """An outside tracker that follows every change (called inside our transaction, before commit)."""

    async def on_create(self, order: WorkOrder) -> None: ...

    async def on_status(self, order: WorkOrder, old_status: str, note: str | None) -> None: ...

    async def on_reassign(
        self, order: WorkOrder, old_department: str, old_status: str, note: str | None
    ) -> None: ...

    async def on_note(self, order: WorkOrder, note: str) -> None: ...


def step_record(step: WorkOrderStep) -> StepRecord:
    return StepRecord(
        id=step.id,
        actor=step.actor,
        actor_role=step.actor_role,
        action=step.action,
        from_status=step.from_status,
        to_status=step.to_status,
        from_department=step.from_department,
        to_department=step.to_department,
        note=step.note,
        created_at=utc(step.created_at),
    )


def order_record(order: WorkOrder, steps: list[WorkOrderStep] | None = None) -> WorkOrderRecord:
    return WorkOrderRecord(
        id=order.id,
        number=order.number,
        category=order.category,
        title=order.title,
        description=order.description,
        location=order.location,
        contact_id=order.contact_id,
        conversation_id=order.conversation_id,
        channel=order.channel,
        language=order.language,
        department=order.department,
        priority=order.priority,
        status=order.status,
        due_at=utc(order.due_at),
        created_at=utc(order.created_at),
        updated_at=utc(order.updated_at),
        resolved_at=utc_or_none(order.resolved_at),
        external_ref=order.external_ref,
        duplicate_of=order.duplicate_of,
        report_count=order.report_count,
        steps=[step_record(s) for s in steps or []],
        phone=order.phone,
        photos=tuple(order.photos or ()),
        satisfaction=order.satisfaction,
        push_pending=bool(order.push_pending),
    )


class EmbeddedBackend:
    """Work orders in our own database."""

    name = "embedded"

    def __init__(
        self,
        db: Database,
        *,
        number_prefix: str = "BJ",
        timezone: str = "Asia/Shanghai",
        clock: Callable[[], datetime] = utc_now,
        mirror: Mirror | None = None,
    ) -> None:
        self.db = db
        self.number_prefix = number_prefix
        self.tz = ZoneInfo(timezone)
        self.clock = clock
        self.mirror = mirror

    # ---- setup
    # ------------------------------------------------------------------------------------------------

    async def sync_departments(self, departments: list[DepartmentInfo]) -> None:
        """Insert or rename the configured departments (never deletes: old orders keep pointing at theirs)."""
        rows = [{"code": d.code, "name_zh": d.name_zh, "name_en": d.name_en} for d in departments]
        if not rows:
            return
        async with self.db.sessions() as session, session.begin():
            stmt = self._insert(Department).values(rows)
            stmt = stmt.on_conflict_do_update(
                index_elements=["code"],
                set_={"name_zh": stmt.excluded.name_zh, "name_en": stmt.excluded.name_en},
            )
            await session.execute(stmt)

    async def close(self) -> None:
        """Nothing of its own to close (the database belongs to the app)."""

    # ---- the interface
    # ----------------------------------------------------------------------------------------

    async def create(self, new: NewWorkOrder) -> WorkOrderRecord:
        if new.category not in Category.__members__.values():
            raise InvalidWorkOrder(f"unknown category {new.category!r}")
        if new.priority not in Priority.__members__.values():
            raise InvalidWorkOrder(f"unknown priority {new.priority!r}")
        if new.status not in (Status.NEW, Status.ASSIGNED):
            raise InvalidWorkOrder("a new order starts as new or assigned")
        created = utc(new.created_at or self.clock())
        day = created.astimezone(self.tz).strftime("%Y%m%d")
        actor = new.actor or SYSTEM
        try:
            async with self.db.sessions() as session, session.begin():
                sequence = await self._next_sequence(
                    session, day
                )  # first statement: a write (see module doc)
                await self._check_references(session, new)
                order = WorkOrder(
                    number=f"{self.number_prefix}-{day}-{sequence:04d}",
                    category=new.category,
                    title=new.title[:200],
                    description=new.description,
                    location=new.location,
                    contact_id=new.contact_id,
                    conversation_id=new.conversation_id,
                    channel=new.channel,
                    language=new.language,
                    department=new.department,
                    priority=new.priority,
                    status=new.status,
                    due_at=utc(new.due_at),
                    created_at=created,
                    updated_at=created,
                    report_count=1,
                    phone=new.phone,
                    photos=list(new.photos) or None,
                    push_pending=False,
                )
                session.add(order)
                await session.flush()
                step = WorkOrderStep(
                    work_order_id=order.id,
                    actor=actor.name,
                    actor_role=actor.role.value,
                    action="created",
                    from_status=None,
                    to_status=new.status,
                    from_department=None,
                    to_department=new.department,
                    note=new.note,
                    created_at=created,
                )
                session.add(step)
                if self.mirror is not None:
                    await self.mirror.on_create(order)
                await session.flush()
                return order_record(order, [step])  # the only step: no need to read it back
        except IntegrityError as exc:
            raise InvalidWorkOrder(f"the order refers to something that does not exist: {exc.orig}") from None

    async def get(self, number: str, *, with_steps: bool = True) -> WorkOrderRecord:
        async with self.db.sessions() as session:
            order = (
                await session.execute(select(WorkOrder).where(WorkOrder.number == number))
            ).scalar_one_or_none()
            if order is None:
                raise WorkOrderNotFound(number)
            return await self._record(session, order) if with_steps else order_record(order)

    async def find(self, where: OrderFilter) -> list[WorkOrderRecord]:
        query = select(WorkOrder)
        if where.overdue_at is not None:
            query = query.where(text(OPEN_SQL), WorkOrder.due_at < utc(where.overdue_at))
            if where.status:
                query = query.where(WorkOrder.status.in_(where.status))
        elif where.status:
            query = query.where(WorkOrder.status.in_(where.status))
        if where.department:
            query = query.where(WorkOrder.department == where.department)
        if where.departments is not None:
            query = query.where(WorkOrder.department.in_(where.departments))
        if where.contact_id:
            query = query.where(WorkOrder.contact_id == where.contact_id)
        if where.category:
            query = query.where(WorkOrder.category == where.category)
        if where.created_from:
            query = query.where(WorkOrder.created_at >= utc(where.created_from))
        if where.created_to:
            query = query.where(WorkOrder.created_at < utc(where.created_to))
        if where.overdue_at is not None:
            query = query.order_by(WorkOrder.due_at, WorkOrder.id)
        else:
            query = query.order_by(WorkOrder.created_at.desc(), WorkOrder.id.desc())
        query = query.limit(where.limit).offset(where.offset)
        async with self.db.sessions() as session:
            return [order_record(o) for o in (await session.execute(query)).scalars()]

    async def update_status(
        self,
        number: str,
        status: str,
        actor: Actor,
        note: str | None = None,
        *,
        due_at: datetime | None = None,
    ) -> WorkOrderRecord:
        async with self.db.sessions() as session, session.begin():
            order = await self._lock(session, number)
            old = order.status
            check_transition(old, status, actor.role)
            now = self.clock()
            order.status = status
            order.updated_at = now
            if status == Status.RESOLVED:
                order.resolved_at = now
            if status == Status.REOPENED:
                order.resolved_at = None
            if due_at is not None:
                order.due_at = utc(due_at)
            self._step(session, order, actor, "status", old, status, note=note)
            if self.mirror is not None:
                await self.mirror.on_status(order, old, note)
            await session.flush()
            return await self._record(session, order)

    async def add_note(
        self, number: str, actor: Actor, note: str, *, action: str = "note"
    ) -> WorkOrderRecord:
        if not note.strip():
            raise InvalidWorkOrder("the note is empty")
        async with self.db.sessions() as session, session.begin():
            order = await self._lock(session, number)
            order.updated_at = self.clock()
            if action == "linked_report":
                order.report_count += 1
            self._step(session, order, actor, action, None, None, note=note)
            if self.mirror is not None:
                await self.mirror.on_note(order, note)
            await session.flush()
            return await self._record(session, order)

    async def rate(self, number: str, actor: Actor, score: int, note: str) -> WorkOrderRecord:
        """The citizen's answer to the 回访: kept on the order (the latest wins) and as a step of its history."""
        if not 1 <= score <= 5:
            raise InvalidWorkOrder(f"a satisfaction score is 1 to 5, not {score}")
        async with self.db.sessions() as session, session.begin():
            order = await self._lock(session, number)
            order.satisfaction = score
            order.updated_at = self.clock()
            # Not pushed to the outside tracker: the citizen's answer must not depend on it being up.
            self._step(session, order, actor, "satisfaction", None, None, note=note)
            await session.flush()
            return await self._record(session, order)

    async def reassign(
        self, number: str, department: str, mode: DispatchMode, actor: Actor, note: str | None = None
    ) -> WorkOrderRecord:
        async with self.db.sessions() as session, session.begin():
            order = await self._lock(session, number)
            target, status = dispatch_target(
                DispatchMode(mode), order.status, order.department, department, actor.role
            )
            if await session.get(Department, target) is None:
                raise InvalidWorkOrder(f"unknown department {target!r}")
            old_department, old_status = order.department, order.status
            order.department, order.status, order.updated_at = target, status.value, self.clock()
            self._step(
                session,
                order,
                actor,
                f"dispatch_{DispatchMode(mode).value}",
                old_status,
                status.value,
                old_department,
                target,
                note,
            )
            if self.mirror is not None:
                await self.mirror.on_reassign(order, old_department, old_status, note)
            await session.flush()
            return await self._record(session, order)

    async def changes_since(self, cursor: str | None, limit: int = 100) -> ChangeBatch:
        """Status and department changes (steps with a to_status) after the cursor (a step id), oldest
        first."""
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

    async def latest_step_cursor(self) -> str:
        """The cursor of the newest step ("now" for a reader of changes_since that starts fresh)."""
        async with self.db.sessions() as session:
            return str((await session.execute(select(func.max(WorkOrderStep.id)))).scalar_one_or_none() or 0)

    # ---- for the service layer, the SLA watcher and the RT sync
    # -----------------------------------------------

    async def contact_exists(self, contact_id: str) -> bool:
        async with self.db.sessions() as session:
            return await session.get(Contact, contact_id) is not None

    async def claim_alerts(
        self, level: str, due_before: datetime, due_from: datetime | None = None, limit: int = 500
    ) -> list[WorkOrderRecord]:
        """Open orders due in [due_from, due_before) not yet alerted at `level` for their current deadline:
        record
        the alert (once, even with several watchers) and a step, and return them."""
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
            stmt = self._insert(WorkOrderAlert).values(
                [
                    {"work_order_id": oid, "level": level, "due_at": due, "created_at": now}
                    for oid, due in candidates
                ]
            )
            stmt = stmt.on_conflict_do_nothing(index_elements=["work_order_id", "level", "due_at"])
            claimed_ids = [
                r[0] for r in (await session.execute(stmt.returning(WorkOrderAlert.work_order_id))).all()
            ]
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
                note = f"{level}: due {utc(order.due_at).isoformat()}"
                self._step(session, order, SYSTEM, f"sla_{level}", None, None, note=note)
            return [order_record(o) for o in orders]

    async def find_by_external_ref(self, ref: str) -> WorkOrderRecord | None:
        async with self.db.sessions() as session:
            order = (
                await session.execute(select(WorkOrder).where(WorkOrder.external_ref == ref))
            ).scalar_one_or_none()
            return None if order is None else order_record(order)

    async def apply_outside_change(
        self,
        number: str,
        actor: Actor,
        *,
        status: str | None = None,
        department: str | None = None,
        note: str | None = None,
    ) -> WorkOrderRecord | None:
        """A change made in the outside tracker: apply it here without telling the mirror (it already knows).
        Returns None when there was nothing to change."""
        async with self.db.sessions() as session, session.begin():
            order = await self._lock(session, number)
            old_status, old_department = order.status, order.department
            new_status = status or old_status
            new_department = department or old_department
            if new_status == old_status and new_department == old_department:
                return None
            if new_department != old_department and await session.get(Department, new_department) is None:
                raise InvalidWorkOrder(f"unknown department {new_department!r}")
            now = self.clock()
            order.status, order.department, order.updated_at = new_status, new_department, now
            if new_status == Status.RESOLVED and old_status != Status.RESOLVED:
                order.resolved_at = now
            action = "status" if new_department == old_department else "dispatch_outside"
            self._step(
                session,
                order,
                actor,
                action,
                old_status,
                new_status,
                old_department if new_department != old_department else None,
                new_department if new_department != old_department else None,
                note,
            )
            await session.flush()
            return await self._record(session, order)

    async def read_cursor(self, name: str) -> str | None:
        async with self.db.sessions() as session:
            row = await session.get(SyncCursor, name)
            return None if row is None else row.value

    async def write_cursor(self, name: str, value: str) -> None:
        async with self.db.sessions() as session, session.begin():
            stmt = self._insert(SyncCursor).values(name=name, value=value, updated_at=self.clock())
            await session.execute(
                stmt.on_conflict_do_update(
                    index_elements=["name"],
                    set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
                )
            )

    # ---- internals
    # --------------------------------------------------------------------------------------------

    def _insert(self, model: Any) -> Any:
        return (sqlite.insert if self.db.is_sqlite else postgresql.insert)(model)

    async def _next_sequence(self, session: AsyncSession, day: str) -> int:
        stmt = self._insert(WorkOrderSequence).values(day=day, last=1)
        stmt = stmt.on_conflict_do_update(
            index_elements=["day"], set_={"last": WorkOrderSequence.last + 1}
        ).returning(WorkOrderSequence.last)
        return int((await session.execute(stmt)).scalar_one())

    async def _check_references(self, session: AsyncSession, new: NewWorkOrder) -> None:
        # One round trip for both (filing speed matters); clear reasons instead of a foreign-key error.
        contact_ok, department_ok = (
            await session.execute(
                select(
                    exists().where(Contact.id == new.contact_id),
                    exists().where(Department.code == new.department),
                )
            )
        ).one()
        if not contact_ok:
            raise InvalidWorkOrder(f"unknown contact {new.contact_id!r}")
        if not department_ok:
            raise InvalidWorkOrder(f"unknown department {new.department!r}")

    async def _lock(self, session: AsyncSession, number: str) -> WorkOrder:
        # A write first (see the module docstring), then the row as it is now.
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

    def _step(
        self,
        session: AsyncSession,
        order: WorkOrder,
        actor: Actor,
        action: str,
        from_status: str | None,
        to_status: str | None,
        from_department: str | None = None,
        to_department: str | None = None,
        note: str | None = None,
    ) -> None:
        session.add(
            WorkOrderStep(
                work_order_id=order.id,
                actor=actor.name,
                actor_role=actor.role.value,
                action=action,
                from_status=from_status,
                to_status=to_status,
                from_department=from_department,
                to_department=to_department,
                note=note,
                created_at=self.clock(),
            )
        )

    async def _record(self, session: AsyncSession, order: WorkOrder) -> WorkOrderRecord:
        await session.flush()
        steps = list(
            (
                await session.execute(
                    select(WorkOrderStep)
                    .where(WorkOrderStep.work_order_id == order.id)
                    .order_by(WorkOrderStep.id)
                )
            ).scalars()
        )
        return order_record(order, steps)

    async def count(self) -> int:
        async with self.db.sessions() as session:
            return int((await session.execute(select(func.count()).select_from(WorkOrder))).scalar_one())


__all__ = ["EmbeddedBackend", "Mirror", "WorkflowError", "order_record", "utc"]
