"""The embedded backend: work orders in the project's own database (SQLite or PostgreSQL), the default.

Concurrency: every change runs in one transaction whose first statement is a write (the per-day number upsert, or
`rows.lock_order`'s touch of the order's row), so concurrent writers queue instead of failing. Numbers come from
`work_order_sequences(day, last)`, bumped with INSERT … ON CONFLICT DO UPDATE … RETURNING in the order's own
transaction: unique and gap-free per day.

The optional `mirror` is told about every change inside the transaction, before commit (the RT adapter pushes the
change to Request Tracker there); if it raises, nothing is changed here either.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, fields
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import exists, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm_adapter.backend import (
    ChangeBatch,
    InvalidWorkOrder,
    NewWorkOrder,
    OrderFilter,
    WorkOrderNotFound,
    WorkOrderRecord,
)
from crm_adapter.change_feed import ChangeFeed
from crm_adapter.models import OPEN_SQL, Department, WorkOrder, WorkOrderSequence
from crm_adapter.routing import DepartmentInfo
from crm_adapter.rows import add_step, insert, lock_order, order_record, read_record
from crm_adapter.workflow import (
    SYSTEM,
    Actor,
    Category,
    DispatchMode,
    Priority,
    Status,
    check_transition,
    dispatch_target,
)
from gateway.clock import utc, utc_now
from gateway.storage import Contact, Database

# The fields of a NewWorkOrder stored as given; `create` sets the others (or they are not columns: actor, note).
_STORED_AS_GIVEN = tuple(
    f.name
    for f in fields(NewWorkOrder)
    if f.name not in ("title", "due_at", "photos", "created_at", "actor", "note")
)


class Mirror(Protocol):
    """An outside tracker that follows every change (called inside our transaction, before commit)."""

    async def on_create(self, order: WorkOrder) -> None: ...

    async def on_status(self, order: WorkOrder, old_status: str, note: str | None) -> None: ...

    async def on_reassign(self, order: WorkOrder, old_department: str, old_status: str, note: str | None) -> None: ...

    async def on_note(self, order: WorkOrder, note: str) -> None: ...


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
        self.feed = ChangeFeed(db)

    async def sync_departments(self, departments: list[DepartmentInfo]) -> None:
        """Insert or rename the configured departments (never deletes: old orders keep pointing at theirs)."""
        rows = [asdict(d) for d in departments]
        if not rows:
            return
        async with self.db.sessions() as session, session.begin():
            stmt = insert(self.db, Department).values(rows)
            stmt = stmt.on_conflict_do_update(
                index_elements=["code"],
                set_={"name_zh": stmt.excluded.name_zh, "name_en": stmt.excluded.name_en},
            )
            await session.execute(stmt)

    async def close(self) -> None:
        """Nothing of its own to close (the database belongs to the app)."""

    async def create(self, new: NewWorkOrder) -> WorkOrderRecord:
        if new.category not in Category.__members__.values():
            raise InvalidWorkOrder(f"unknown category {new.category!r}")
        if new.priority not in Priority.__members__.values():
            raise InvalidWorkOrder(f"unknown priority {new.priority!r}")
        if new.status not in (Status.NEW, Status.ASSIGNED):
            raise InvalidWorkOrder("a new order starts as new or assigned")
        created = utc(new.created_at or self.clock())
        day = created.astimezone(self.tz).strftime("%Y%m%d")
        try:
            async with self.db.sessions() as session, session.begin():
                sequence = await self._next_sequence(session, day)  # the first statement is a write
                await self._check_references(session, new)
                order = WorkOrder(
                    **{name: getattr(new, name) for name in _STORED_AS_GIVEN},
                    number=f"{self.number_prefix}-{day}-{sequence:04d}",
                    title=new.title[:200],
                    due_at=utc(new.due_at),
                    photos=list(new.photos) or None,
                    created_at=created,
                    updated_at=created,
                    report_count=1,
                    push_pending=False,
                )
                session.add(order)
                await session.flush()
                step = add_step(
                    session,
                    order,
                    new.actor or SYSTEM,
                    "created",
                    created,
                    to_status=new.status,
                    to_department=new.department,
                    note=new.note,
                )
                if self.mirror is not None:
                    await self.mirror.on_create(order)
                await session.flush()
                return order_record(order, [step])  # the only step: no need to read it back
        except IntegrityError as exc:
            raise InvalidWorkOrder(f"the order refers to something that does not exist: {exc.orig}") from None

    async def get(self, number: str, *, with_steps: bool = True) -> WorkOrderRecord:
        async with self.db.sessions() as session:
            order = (await session.execute(select(WorkOrder).where(WorkOrder.number == number))).scalar_one_or_none()
            if order is None:
                raise WorkOrderNotFound(number)
            return await read_record(session, order) if with_steps else order_record(order)

    async def find(self, where: OrderFilter) -> list[WorkOrderRecord]:
        query = select(WorkOrder)
        if where.overdue_at is not None:
            query = query.where(text(OPEN_SQL), WorkOrder.due_at < utc(where.overdue_at))
        if where.status:
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
            order = await lock_order(session, number)
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
            add_step(session, order, actor, "status", self.clock(), from_status=old, to_status=status, note=note)
            if self.mirror is not None:
                await self.mirror.on_status(order, old, note)
            return await read_record(session, order)

    async def add_note(self, number: str, actor: Actor, note: str, *, action: str = "note") -> WorkOrderRecord:
        if not note.strip():
            raise InvalidWorkOrder("the note is empty")
        async with self.db.sessions() as session, session.begin():
            order = await lock_order(session, number)
            order.updated_at = self.clock()
            if action == "linked_report":
                order.report_count += 1
            add_step(session, order, actor, action, self.clock(), note=note)
            if self.mirror is not None:
                await self.mirror.on_note(order, note)
            return await read_record(session, order)

    async def rate(self, number: str, actor: Actor, score: int, note: str) -> WorkOrderRecord:
        """The citizen's answer to the 回访: kept on the order (the latest wins) and as a step of its history."""
        if not 1 <= score <= 5:
            raise InvalidWorkOrder(f"a satisfaction score is 1 to 5, not {score}")
        async with self.db.sessions() as session, session.begin():
            order = await lock_order(session, number)
            order.satisfaction = score
            order.updated_at = self.clock()
            # Not pushed to the outside tracker: the citizen's answer must not depend on it being up.
            add_step(session, order, actor, "satisfaction", self.clock(), note=note)
            return await read_record(session, order)

    async def reassign(
        self, number: str, department: str, mode: DispatchMode, actor: Actor, note: str | None = None
    ) -> WorkOrderRecord:
        async with self.db.sessions() as session, session.begin():
            order = await lock_order(session, number)
            target, status = dispatch_target(DispatchMode(mode), order.status, order.department, department, actor.role)
            if await session.get(Department, target) is None:
                raise InvalidWorkOrder(f"unknown department {target!r}")
            old_department, old_status = order.department, order.status
            order.department, order.status, order.updated_at = target, status.value, self.clock()
            add_step(
                session,
                order,
                actor,
                f"dispatch_{DispatchMode(mode).value}",
                self.clock(),
                from_status=old_status,
                to_status=status.value,
                from_department=old_department,
                to_department=target,
                note=note,
            )
            if self.mirror is not None:
                await self.mirror.on_reassign(order, old_department, old_status, note)
            return await read_record(session, order)

    async def changes_since(self, cursor: str | None, limit: int = 100) -> ChangeBatch:
        """Status and department changes after the cursor, oldest first (`crm_adapter.change_feed`)."""
        return await self.feed.since(cursor, limit)

    async def _next_sequence(self, session: AsyncSession, day: str) -> int:
        stmt = insert(self.db, WorkOrderSequence).values(day=day, last=1)
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
