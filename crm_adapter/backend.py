"""The one interface every work-order backend offers, and the plain records that cross it.

Two implementations pass the same contract test (tests/crm_adapter/test_contract.py): the embedded backend (the
project's own database, the default) and Request Tracker 5 (`CRM_BACKEND=rt`). The service layer
(`crm_adapter.service`) adds routing, deadlines and duplicate linking on top and is what the API and the bot use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from crm_adapter.workflow import Actor, DispatchMode


class WorkOrderError(Exception):
    """Base of the errors a backend raises on purpose (each maps to a 4xx, or 503 for an unreachable tracker)."""


class WorkOrderNotFound(WorkOrderError):
    pass


class InvalidWorkOrder(WorkOrderError):
    """Bad input: unknown contact, department, category..."""


class BackendUnavailable(WorkOrderError):
    """The outside tracker did not answer or refused the change; nothing was changed on our side."""


@dataclass(frozen=True)
class NewWorkOrder:
    """Everything needed to file an order; department and due_at are decided by the service layer."""

    category: str
    title: str
    description: str
    contact_id: str
    channel: str
    department: str
    due_at: datetime
    priority: str = "normal"
    location: str | None = None
    conversation_id: str | None = None
    language: str = "zh"
    status: str = "new"  # "assigned" when routing found a department at once (direct dispatch)
    actor: Actor | None = None
    note: str | None = None  # for the first step: how it was routed
    created_at: datetime | None = None  # defaults to now (tests and imports pass their own)
    phone: str | None = None  # the contact phone for this order (validated by whoever collected it)
    photos: tuple[str, ...] = ()  # attachment refs or URLs of the photos sent with the report


@dataclass(frozen=True)
class StepRecord:
    id: int
    actor: str
    actor_role: str
    action: str
    from_status: str | None
    to_status: str | None
    from_department: str | None
    to_department: str | None
    note: str | None
    created_at: datetime


@dataclass(frozen=True)
class WorkOrderRecord:
    id: int
    number: str
    category: str
    title: str
    description: str
    location: str | None
    contact_id: str
    conversation_id: str | None
    channel: str
    language: str
    department: str
    priority: str
    status: str
    due_at: datetime
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    external_ref: str | None
    duplicate_of: int | None
    report_count: int
    steps: list[StepRecord] = field(default_factory=list)
    phone: str | None = None
    photos: tuple[str, ...] = ()
    satisfaction: int | None = None  # 1–5, the citizen's latest answer to the 回访 after closing
    push_pending: bool = False  # Request Tracker has not taken it yet (pushed by the next sync)


@dataclass(frozen=True)
class OrderFilter:
    status: tuple[str, ...] = ()
    department: str | None = None
    departments: tuple[str, ...] | None = None  # only orders of these departments (a staff member's scope)
    contact_id: str | None = None
    category: str | None = None
    overdue_at: datetime | None = None  # open and due before this moment
    created_from: datetime | None = None
    created_to: datetime | None = None
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True)
class Change:
    """A status or department change of an order, in the order they happened; the cursor is opaque."""

    cursor: str
    number: str
    action: str
    from_status: str | None
    to_status: str | None
    department: str
    actor: str
    at: datetime


@dataclass(frozen=True)
class ChangeBatch:
    changes: list[Change]
    cursor: str | None  # pass back to get the next changes; None when there were never any


class WorkOrderBackend(Protocol):
    """Where work orders live. Every method raises WorkOrderError subclasses, never anything else on purpose."""

    name: str

    async def create(self, new: NewWorkOrder) -> WorkOrderRecord: ...

    async def get(self, number: str, *, with_steps: bool = True) -> WorkOrderRecord: ...

    async def find(self, where: OrderFilter) -> list[WorkOrderRecord]: ...

    async def update_status(
        self,
        number: str,
        status: str,
        actor: Actor,
        note: str | None = None,
        *,
        due_at: datetime | None = None,
    ) -> WorkOrderRecord: ...

    async def add_note(self, number: str, actor: Actor, note: str, *, action: str = "note") -> WorkOrderRecord: ...

    async def reassign(
        self, number: str, department: str, mode: DispatchMode, actor: Actor, note: str | None = None
    ) -> WorkOrderRecord: ...

    async def changes_since(self, cursor: str | None, limit: int = 100) -> ChangeBatch: ...

    async def rate(self, number: str, actor: Actor, score: int, note: str) -> WorkOrderRecord: ...

    async def close(self) -> None: ...
