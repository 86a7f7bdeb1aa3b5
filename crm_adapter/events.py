"""Events the work-order service raises for the rest of the gateway (inbox, proactive notice to the citizen)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from crm_adapter.backend import WorkOrderRecord


@dataclass(frozen=True)
class WorkOrderEvent:
    """kind: filed, linked_report, status_changed, reassigned, note, sla_reminder, sla_overdue.

    `audience` says who should see it in the inbox ("department:<code>", "supervisors", "contact:<id>"); the citizen
    is told about status_changed to assigned, resolved and closed on `channel` (the gateway applies opt-out and the
    channel's window rules).
    """

    kind: str
    number: str
    status: str
    department: str
    contact_id: str
    channel: str
    due_at: datetime
    at: datetime
    source: str = "gateway"  # or "rt" for changes made in Request Tracker
    from_status: str | None = None
    audience: tuple[str, ...] = field(default_factory=tuple)

    @staticmethod
    def of(
        kind: str,
        order: WorkOrderRecord,
        at: datetime,
        *,
        source: str = "gateway",
        from_status: str | None = None,
        audience: tuple[str, ...] = (),
    ) -> WorkOrderEvent:
        return WorkOrderEvent(
            kind=kind,
            number=order.number,
            status=order.status,
            department=order.department,
            contact_id=order.contact_id,
            channel=order.channel,
            due_at=order.due_at,
            at=at,
            source=source,
            from_status=from_status,
            audience=audience or (f"department:{order.department}", f"contact:{order.contact_id}"),
        )


Publish = Callable[[WorkOrderEvent], Awaitable[None]]
