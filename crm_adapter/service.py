"""The work-order service the API, the bot's actions and the inbox use: routing + service commitments + duplicate
linking + events, on top of one backend (embedded or Request Tracker), and its background work (the SLA watcher,
the citizens' notices, the Request Tracker sync)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

import httpx
import structlog

from crm_adapter.backend import (
    InvalidWorkOrder,
    NewWorkOrder,
    OrderFilter,
    WorkOrderBackend,
    WorkOrderNotFound,
    WorkOrderRecord,
)
from crm_adapter.change_feed import ChangeFeed
from crm_adapter.config import CrmConfig
from crm_adapter.cursors import CursorStore
from crm_adapter.duplicates import similarity
from crm_adapter.embedded import EmbeddedBackend
from crm_adapter.events import Publish, WorkOrderEvent
from crm_adapter.notices import CitizenNotifier, Lock, NoticeSink
from crm_adapter.routing import Router, RoutingDecision, RoutingInput, load_routing
from crm_adapter.rt import RtBackend, RtClient
from crm_adapter.sla import SlaPolicy, load_sla
from crm_adapter.sla_alerts import SlaAlerts
from crm_adapter.watcher import SlaWatcher
from crm_adapter.workflow import (
    DISPATCH_DESK,
    OPEN,
    SYSTEM,
    Actor,
    Category,
    DispatchMode,
    Priority,
    Role,
    Status,
)
from gateway.clock import utc_now
from gateway.storage import Database

log = structlog.get_logger(__name__)

BOT = Actor("bot", Role.BOT)
RT_BACKOFF_MAX_SECONDS = 600.0  # the longest wait between two tries while Request Tracker does not answer
DISSATISFIED_AT_MOST = 2  # a 回访 score this low reopens the order (不满意 is 1)


@dataclass(frozen=True)
class FileRequest:
    """A work order as the bot or an agent files it; department and deadline are decided here."""

    category: str
    description: str
    contact_id: str
    channel: str
    title: str | None = None
    location: str | None = None  # free text, kept whole
    conversation_id: str | None = None
    priority: str = "normal"
    language: str = "zh"
    intent: str | None = None  # the NLU intent that led here (routing evidence)
    kb_department: str | None = None  # the department of the KB article the bot found (routing evidence)
    actor: Actor = BOT
    phone: str | None = None  # the contact phone for this order (the channel's, or what the citizen gave)
    photos: tuple[str, ...] = ()  # attachment refs (DATA_DIR/media) or URLs of the photos sent with it


@dataclass(frozen=True)
class FileResult:
    order: WorkOrderRecord
    duplicate: bool  # True: linked to this open order instead of filing a second one
    routing: RoutingDecision | None
    similarity: float | None = None


def _title(description: str) -> str:
    first = description.strip().splitlines()[0] if description.strip() else ""
    return first if len(first) <= 40 else first[:39] + "…"


# What a FileRequest hands on to the backend as it is: the fields both shapes have but title and priority (set in file).
_HANDED_ON = tuple(
    sorted(({f.name for f in fields(FileRequest)} & {f.name for f in fields(NewWorkOrder)}) - {"title", "priority"})
)


DepartmentClassifier = Callable[[str], Awaitable[list[tuple[str, float]]]]
CLASSIFIER_TIMEOUT_SECONDS = 5.0


@dataclass
class WorkOrderService:
    backend: WorkOrderBackend  # the embedded backend or the RT backend (which mirrors into our database)
    db: Database  # our database: SLA alerts, the change feed and cursors live there whatever the backend
    router: Router
    sla: SlaPolicy
    config: CrmConfig = field(default_factory=CrmConfig)
    clock: Callable[[], datetime] = utc_now
    publish: Publish | None = None
    duplicate_window: timedelta = timedelta(days=1)
    notifier: CitizenNotifier | None = None  # set by notify_citizens(); runs with run_background()
    # What the text is about, by department (the composition root lends one: app/ports.py); routing evidence.
    classifier: DepartmentClassifier | None = None

    # ---- filing ------------------------------------------------------------------------------------------------

    async def file(self, request: FileRequest) -> FileResult:
        if request.category not in Category.__members__.values():
            raise InvalidWorkOrder(f"unknown category {request.category!r}")
        if request.priority not in Priority.__members__.values():
            raise InvalidWorkOrder(f"unknown priority {request.priority!r}")
        if not request.description.strip():
            raise InvalidWorkOrder("the description is empty")
        now = self.clock()
        text = " ".join(x for x in (request.title, request.description, request.location) if x)
        existing, score = await self._same_report(request, text, now)
        if existing is not None:
            order = await self.backend.add_note(
                existing.number,
                request.actor,
                f"repeated report (similarity {score:.2f}): {request.description}"
                + (f" @ {request.location}" if request.location else "")
                + "".join(f"; photo {ref}" for ref in request.photos),
                action="linked_report",
            )
            await self._emit(WorkOrderEvent.of("linked_report", order, now))
            return FileResult(order, True, None, score)
        decision = self.router.route(
            RoutingInput(request.category, text, request.intent, request.kb_department,
                         await self._classify(request.description, request.location))
        )
        priority, note = request.priority, ""
        danger = self.router.urgent(request.category, text)
        if danger and priority != Priority.URGENT:
            priority, note = Priority.URGENT.value, f"; urgent: {', '.join(danger[:3])}"
        order = await self.backend.create(
            NewWorkOrder(
                **{name: getattr(request, name) for name in _HANDED_ON},
                title=(request.title or _title(request.description)),
                priority=priority,
                department=decision.department,
                status=(Status.NEW if decision.department == DISPATCH_DESK else Status.ASSIGNED).value,
                due_at=self.sla.due_at(request.category, priority, now),
                note=f"routed to {decision.department} ({decision.reason}){note}",
                created_at=now,
            )
        )
        await self._emit(WorkOrderEvent.of("filed", order, now))
        return FileResult(order, False, decision)

    async def _classify(self, description: str, location: str | None) -> tuple[tuple[str, float], ...]:
        """The classifier's departments for what happened (the place is left out: "by the bus stop" is not the
        bus company's); none when there is no classifier or it fails (routing goes on without it)."""
        if self.classifier is None:
            return ()
        try:
            return tuple(await asyncio.wait_for(self.classifier(description), CLASSIFIER_TIMEOUT_SECONDS))
        except Exception as exc:  # noqa: BLE001 - the rules and the dispatch desk still route the order
            log.warning("crm.classifier_failed", error=repr(exc))
            return ()

    async def _same_report(
        self, request: FileRequest, text: str, now: datetime
    ) -> tuple[WorkOrderRecord | None, float]:
        recent = await self.backend.find(
            OrderFilter(
                status=tuple(s.value for s in OPEN),
                contact_id=request.contact_id,
                category=request.category,
                created_from=now - self.duplicate_window,
                limit=50,
            )
        )
        best: tuple[WorkOrderRecord | None, float] = (None, 0.0)
        for order in recent:
            score = similarity(
                text, " ".join(x for x in (order.title, order.description, order.location) if x)
            )
            if score >= self.config.duplicate_threshold and score > best[1]:
                best = (order, score)
        return best

    # ---- reading -----------------------------------------------------------------------------------------------

    async def get(self, number: str) -> WorkOrderRecord:
        return await self.backend.get(number)

    async def find(self, where: OrderFilter) -> list[WorkOrderRecord]:
        return await self.backend.find(where)

    async def latest_for_contact(self, contact_id: str) -> WorkOrderRecord | None:
        """The contact's newest order ("my latest report")."""
        orders = await self.backend.find(OrderFilter(contact_id=contact_id, limit=1))
        return orders[0] if orders else None

    # ---- changing ----------------------------------------------------------------------------------------------

    async def update_status(
        self, number: str, status: str, actor: Actor, note: str | None = None
    ) -> WorkOrderRecord:
        if status not in Status.__members__.values():
            raise InvalidWorkOrder(f"unknown status {status!r}")
        before = await self.backend.get(number, with_steps=False)
        due_at = None
        if status == Status.REOPENED:  # a reopened order gets a fresh commitment from now
            due_at = self.sla.due_at(before.category, before.priority, self.clock())
        order = await self.backend.update_status(number, status, actor, note, due_at=due_at)
        await self._emit(WorkOrderEvent.of("status_changed", order, self.clock(), from_status=before.status))
        return order

    async def add_note(self, number: str, actor: Actor, note: str) -> WorkOrderRecord:
        order = await self.backend.add_note(number, actor, note)
        await self._emit(WorkOrderEvent.of("note", order, self.clock()))
        return order

    async def reassign(
        self, number: str, department: str, mode: str, actor: Actor, note: str | None = None
    ) -> WorkOrderRecord:
        try:
            dispatch_mode = DispatchMode(mode)
        except ValueError:
            raise InvalidWorkOrder(f"unknown dispatch mode {mode!r} (direct, transfer, return)") from None
        if department not in self.router.departments and dispatch_mode != DispatchMode.RETURN:
            raise InvalidWorkOrder(f"unknown department {department!r}")
        before = await self.backend.get(number, with_steps=False)
        order = await self.backend.reassign(number, department, dispatch_mode, actor, note)
        await self._emit(
            WorkOrderEvent.of(
                "reassigned",
                order,
                self.clock(),
                from_status=before.status,
                audience=(f"department:{order.department}", f"department:{before.department}", "supervisors"),
            )
        )
        return order

    async def rate(self, number: str, contact_id: str, score: int) -> WorkOrderRecord:
        """The filer's answer to the 回访 (satisfaction 1–5) on a resolved or closed order. Anyone else's answer is
        refused as WorkOrderNotFound (nothing is revealed about other people's orders)."""
        order = await self.backend.get(number, with_steps=False)
        if order.contact_id != contact_id:
            raise WorkOrderNotFound(number)
        if order.status not in (Status.RESOLVED, Status.CLOSED):
            raise InvalidWorkOrder(f"{number} is {order.status}: it is rated once it is resolved or closed")
        rated = await self.backend.rate(
            number, Actor(f"contact:{contact_id}", Role.CITIZEN), score, f"satisfaction {score}/5"
        )
        audience = (f"department:{rated.department}", "supervisors")
        await self._emit(WorkOrderEvent.of("rated", rated, self.clock(), audience=audience))
        if score <= DISSATISFIED_AT_MOST:
            # 回访不满意 → 重办: the order goes back to its department with a fresh commitment, as 12345 centres do,
            # and the supervisors see it (the status change is an event for them too).
            note = f"the citizen is not satisfied ({score}/5): handled again"
            return await self.update_status(number, Status.REOPENED.value, SYSTEM, note)
        return rated

    # ---- background work ---------------------------------------------------------------------------------------

    def watcher(self, emit: Publish | None = None) -> SlaWatcher:
        return SlaWatcher(SlaAlerts(self.db, self.clock), self.sla, emit or self._emit, self.clock)

    async def sync_outside(self) -> list[WorkOrderEvent]:
        """Pull changes made in the outside tracker (RT) and raise them as events; nothing to do when embedded."""
        if not isinstance(self.backend, RtBackend):
            return []
        events = [
            WorkOrderEvent.of("status_changed", order, self.clock(), source="rt")
            for order in await self.backend.sync()
        ]
        for event in events:
            await self._emit(event)
        return events

    def notify_citizens(self, sink: NoticeSink, lock: Lock | None = None) -> CitizenNotifier:
        """Tell citizens when their orders move (and ask for the 回访 after closing) through `sink`, from
        run_background() on; `lock` (an async context manager factory) keeps several workers from racing."""
        self.notifier = CitizenNotifier(
            self.backend,
            ChangeFeed(self.db),
            CursorStore(self.db, self.clock),
            sink,
            self.router.departments,
            self.sla.calendar.zone,
            lock,
        )
        return self.notifier

    async def run_background(self) -> None:
        """The SLA watcher, the citizens' notices and, with RT, the transaction poll and the push of orders RT
        did not take: run as one task (cancel it to stop)."""
        tasks = [
            asyncio.create_task(self.watcher().run(self.config.sla_check_seconds), name="crm-sla-watcher")
        ]
        if self.notifier is not None:
            tasks.append(asyncio.create_task(self.notifier.run(self.config.sla_check_seconds), name="crm-notices"))
        if self.backend.name == "rt":
            tasks.append(asyncio.create_task(self._poll_rt(), name="crm-rt-sync"))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()

    async def sync_rt_once(self) -> bool:
        """Push the orders RT did not take, then pull RT's changes; False when RT did not answer."""
        if not isinstance(self.backend, RtBackend):
            return True
        try:
            await self.backend.push_pending()
            await self.sync_outside()
        except Exception as exc:
            log.warning("rt.sync_failed", error=repr(exc))
            return False
        if self.notifier is not None:
            self.notifier.wake()
        return True

    async def _poll_rt(self) -> None:
        failures = 0
        while True:
            failures = 0 if await self.sync_rt_once() else failures + 1
            # Backoff while RT is away (pending pushes included): the poll interval doubled per failure, capped.
            await asyncio.sleep(min(self.config.rt_poll_seconds * 2**min(failures, 10), RT_BACKOFF_MAX_SECONDS))

    async def _emit(self, event: WorkOrderEvent) -> None:
        if self.notifier is not None and event.kind in ("status_changed", "reassigned"):
            self.notifier.wake()
        if self.publish is None:
            return
        try:
            await self.publish(event)
        except Exception as exc:  # the change is committed; a failing subscriber is logged, not raised
            log.error("work_order.publish_failed", number=event.number, kind=event.kind, error=repr(exc))

    async def close(self) -> None:
        await self.backend.close()


async def build_work_orders(
    settings: Any,
    db: Database,
    *,
    http: httpx.AsyncClient | None = None,
    publish: Publish | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> WorkOrderService:
    """Build the work-order service from the gateway's settings: load routing and commitments, pick the backend,
    and make sure the configured departments exist. The database must be migrated already."""
    config = CrmConfig.from_settings(settings)
    router = load_routing(config.routing_path)
    sla = load_sla(config.sla_path)
    backend: EmbeddedBackend
    if config.backend == "rt":
        backend = RtBackend(
            db,
            RtClient(config.rt_url, config.rt_token, http),
            queue_prefix=config.rt_queue_prefix,
            number_prefix=config.number_prefix,
            timezone=sla.calendar.config.timezone,
            clock=clock,
        )
    elif config.backend == "embedded":
        backend = EmbeddedBackend(
            db, number_prefix=config.number_prefix, timezone=sla.calendar.config.timezone, clock=clock
        )
    else:
        raise ValueError(f"CRM_BACKEND must be embedded or rt, not {config.backend!r}")
    await backend.sync_departments(list(router.departments.values()))
    this_year = clock().year
    for year in (this_year, this_year + 1):
        if not sla.calendar.covers(year):
            log.warning(
                "crm.calendar_year_not_covered",
                year=year,
                hint="add the year's holidays and adjusted working days to sla.yml (extra_holidays, "
                "extra_workdays) or upgrade chinesecalendar",
            )
    return WorkOrderService(backend, db, router, sla, config, clock, publish)
