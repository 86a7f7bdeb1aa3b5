"""The SLA watcher: each tick, raise a reminder for open orders whose deadline is near and an overdue alarm for those
past it, once per order, level and deadline (claimed in our database, `crm_adapter.sla_alerts`), and hand the events
to a callback (the gateway publishes them to the department's queue and the supervisors in the inbox)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

import structlog

from crm_adapter.events import Publish, WorkOrderEvent
from crm_adapter.sla import SlaPolicy
from crm_adapter.sla_alerts import SlaAlerts

log = structlog.get_logger(__name__)


class SlaWatcher:
    def __init__(self, alerts: SlaAlerts, sla: SlaPolicy, emit: Publish, clock: Callable[[], datetime]) -> None:
        self.alerts = alerts
        self.sla = sla
        self.emit = emit
        self.clock = clock

    async def tick(self) -> list[WorkOrderEvent]:
        now = self.clock()
        events: list[WorkOrderEvent] = []
        for order in await self.alerts.claim("overdue", now):
            events.append(
                WorkOrderEvent.of("sla_overdue", order, now, audience=(f"department:{order.department}", "supervisors"))
            )
        # A reminder only while the deadline is still ahead: an order found already overdue gets the alarm alone.
        for order in await self.alerts.claim("reminder", self.sla.reminder_threshold(now), due_from=now):
            events.append(
                WorkOrderEvent.of(
                    "sla_reminder", order, now, audience=(f"department:{order.department}", "supervisors")
                )
            )
        for event in events:
            try:
                await self.emit(event)
            except Exception as exc:  # the alert is recorded; a failing subscriber must not stop the watcher
                log.error("sla.emit_failed", number=event.number, kind=event.kind, error=repr(exc))
        return events

    async def run(self, interval_seconds: float) -> None:
        """Tick forever (cancel the task to stop)."""
        while True:
            try:
                events = await self.tick()
                if events:
                    log.info("sla.alerts", count=len(events))
            except Exception as exc:
                log.error("sla.tick_failed", error=repr(exc))
            await asyncio.sleep(interval_seconds)
