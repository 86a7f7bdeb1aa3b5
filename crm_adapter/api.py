"""The work-order HTTP API: /api/work-orders (list, read with steps, create, status, note, reassign) and the CSV
export /api/work-orders.csv.

Every route needs an inbox login (agent, supervisor or admin; see gateway/auth.py) or, for API clients,
`Authorization: Bearer <ADMIN_TOKEN>` (acting as a supervisor). The service comes from `services.work_orders`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from crm_adapter.backend import (
    BackendUnavailable,
    InvalidWorkOrder,
    OrderFilter,
    WorkOrderError,
    WorkOrderNotFound,
    WorkOrderRecord,
)
from crm_adapter.models import OPEN_STATUSES
from crm_adapter.service import FileRequest, WorkOrderService
from crm_adapter.workflow import Actor, Role, WorkflowError
from gateway.auth import INBOX_ROLES, bearer_admin, session_principal
from gateway.clock import iso, utc

StatusName = Literal["new", "assigned", "in_progress", "resolved", "closed", "reopened", "returned"]
CategoryName = Literal["consultation", "complaint", "report", "suggestion", "praise"]
PriorityName = Literal["low", "normal", "high", "urgent"]


# ---- pydantic models at the edge ---------------------------------------------------------------------------------


class StepOut(BaseModel):
    actor: str
    actor_role: str
    action: str
    from_status: str | None
    to_status: str | None
    from_department: str | None
    to_department: str | None
    note: str | None
    created_at: datetime


class WorkOrderOut(BaseModel):
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
    overdue: bool
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    external_ref: str | None
    report_count: int
    phone: str | None = None
    photos: list[str] = Field(default_factory=list, description="Attachment refs (media) or URLs of the photos.")
    satisfaction: int | None = Field(None, description="1–5: the citizen's latest answer to the 回访.")
    push_pending: bool = Field(False, description="Request Tracker has not taken it yet (pushed by the RT sync).")
    steps: list[StepOut] | None = None

    @staticmethod
    def of(order: WorkOrderRecord, now: datetime, with_steps: bool = False) -> WorkOrderOut:
        """The record as the API shows it (the record's fields the model names, steps without their ids)."""
        fields = asdict(order)
        return WorkOrderOut.model_validate(
            {
                **fields,
                "overdue": order.status in OPEN_STATUSES and order.due_at < now,
                "steps": fields["steps"] if with_steps else None,
            }
        )


class WorkOrderPage(BaseModel):
    items: list[WorkOrderOut]
    next_offset: int | None = Field(description="Pass as offset for the next page; null on the last page.")


class CreateWorkOrder(BaseModel):
    category: CategoryName
    description: str = Field(min_length=1, max_length=5000)
    contact_id: str = Field(min_length=1, max_length=32)
    channel: str = Field(min_length=1, max_length=32)
    title: str | None = Field(None, max_length=200)
    location: str | None = Field(None, max_length=1000)
    conversation_id: str | None = Field(None, max_length=32)
    priority: PriorityName = "normal"
    language: Literal["zh", "en"] = "zh"
    intent: str | None = Field(None, max_length=64)
    kb_department: str | None = Field(None, max_length=48)
    phone: str | None = Field(None, max_length=32)
    photos: list[str] = Field(default_factory=list, max_length=20)


class CreatedWorkOrder(BaseModel):
    order: WorkOrderOut
    duplicate: bool = Field(
        description="True: the same contact reported this already; linked to the open order."
    )
    routed_by: str | None


class StatusChange(BaseModel):
    status: StatusName
    note: str | None = Field(None, max_length=5000)


class NoteIn(BaseModel):
    note: str = Field(min_length=1, max_length=5000)


class Reassignment(BaseModel):
    mode: Literal["direct", "transfer", "return"]
    department: str = Field("dispatch", min_length=1, max_length=48)
    note: str | None = Field(None, max_length=5000)


# ---- dependencies ------------------------------------------------------------------------------------------------


def service_of(request: Request) -> WorkOrderService:
    service = getattr(request.app.state.services, "work_orders", None)
    if service is None:
        raise HTTPException(503, "work orders are not available")
    return service  # type: ignore[no-any-return]


async def current_actor(request: Request, authorization: Annotated[str | None, Header()] = None) -> Actor:
    """An inbox login (agent, supervisor, admin) or the admin bearer token (→ a supervisor); 401/403 otherwise."""
    principal = await session_principal(request)  # CSRF-checked for a browser's state-changing request
    if principal is not None:
        if principal.role not in INBOX_ROLES:
            raise HTTPException(403, "work orders need the role agent, supervisor or admin")
        # Agents and supervisors work their own departments' orders (none named: the default queue); admins all.
        scope = None if principal.sees_all else (
            principal.departments or (request.app.state.services.settings.handoff_default_department,)
        )
        return Actor(principal.name, Role.AGENT if principal.role == "agent" else Role.SUPERVISOR, scope)
    bearer_admin(request.app.state.services.settings.admin_token, authorization)  # the one admin-token check
    return Actor("admin", Role.SUPERVISOR)  # the workflow's widest role


Service = Annotated[WorkOrderService, Depends(service_of)]
CurrentActor = Annotated[Actor, Depends(current_actor)]


def _error(exc: WorkOrderError | WorkflowError) -> HTTPException:
    if isinstance(exc, WorkOrderNotFound):
        return HTTPException(404, f"no work order {exc}")
    if isinstance(exc, WorkflowError):
        return HTTPException(409, str(exc))
    if isinstance(exc, InvalidWorkOrder):
        return HTTPException(422, str(exc))
    if isinstance(exc, BackendUnavailable):
        return HTTPException(503, str(exc))
    return HTTPException(400, str(exc))


@dataclass(frozen=True)
class OrderQuery:
    """The list/export filters of one request (page: the first 500), and the moment they were read at."""

    where: OrderFilter
    now: datetime


def order_query(
    service: Service,
    status: Annotated[list[StatusName] | None, Query()] = None,
    department: str | None = None,
    overdue: bool = False,
    contact_id: str | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
) -> OrderQuery:
    for name, value in (("created_from", created_from), ("created_to", created_to)):
        if value is not None and value.tzinfo is None:
            raise HTTPException(422, f"{name} needs a time zone (e.g. 2026-11-23T00:00:00+08:00)")
    now = service.clock()
    where = OrderFilter(
        status=tuple(status or ()),
        department=department,
        contact_id=contact_id,
        overdue_at=now if overdue else None,
        created_from=created_from,
        created_to=created_to,
        limit=500,
        offset=0,
    )
    return OrderQuery(where, now)


Filters = Annotated[OrderQuery, Depends(order_query)]


def build_router() -> APIRouter:
    router = APIRouter(tags=["work orders"])

    @router.get("/api/work-orders", response_model=WorkOrderPage)
    async def list_orders(
        _actor: CurrentActor,
        service: Service,
        query: Filters,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> WorkOrderPage:
        now = query.now
        where = replace(query.where, limit=limit + 1, offset=offset, departments=_actor.departments)
        try:
            orders = await service.find(where)
        except (WorkOrderError, WorkflowError) as exc:
            raise _error(exc) from None
        more = len(orders) > limit
        return WorkOrderPage(
            items=[WorkOrderOut.of(o, now) for o in orders[:limit]],
            next_offset=offset + limit if more else None,
        )

    @router.get("/api/work-orders.csv", response_class=StreamingResponse)
    async def export_csv(_actor: CurrentActor, service: Service, query: Filters) -> StreamingResponse:
        now, base = query.now, replace(query.where, departments=_actor.departments)
        columns = [
            "number",
            "category",
            "status",
            "department",
            "priority",
            "title",
            "location",
            "channel",
            "contact_id",
            "created_at",
            "due_at",
            "overdue",
            "resolved_at",
            "external_ref",
            "satisfaction",
        ]

        async def rows() -> AsyncIterator[str]:
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            buffer.write("\ufeff")  # so spreadsheet programs read the Chinese text as UTF-8
            writer.writerow(columns)
            offset = 0
            while True:
                page = await service.find(replace(base, offset=offset))
                for order in page:
                    out = WorkOrderOut.of(order, now).model_dump()
                    writer.writerow([_cell(out[c]) for c in columns])
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
                if len(page) < base.limit:
                    return
                offset += base.limit

        stamp = utc(now).strftime("%Y%m%dT%H%M%SZ")
        return StreamingResponse(
            rows(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="work-orders-{stamp}.csv"'},
        )

    @router.get("/api/work-orders/{number}", response_model=WorkOrderOut)
    async def read_order(number: str, _actor: CurrentActor, service: Service) -> WorkOrderOut:
        try:
            return WorkOrderOut.of(await _seen_by(_actor, service, number), service.clock(), with_steps=True)
        except (WorkOrderError, WorkflowError) as exc:
            raise _error(exc) from None

    @router.post(
        "/api/work-orders",
        response_model=CreatedWorkOrder,
        status_code=201,
        responses={200: {"model": CreatedWorkOrder, "description": "linked to an open order"}},
    )
    async def create_order(body: CreateWorkOrder, actor: CurrentActor, service: Service) -> Any:
        try:
            result = await service.file(FileRequest(**{**body.model_dump(), "photos": tuple(body.photos)}, actor=actor))
        except (WorkOrderError, WorkflowError) as exc:
            raise _error(exc) from None
        out = CreatedWorkOrder(
            order=WorkOrderOut.of(result.order, service.clock(), with_steps=True),
            duplicate=result.duplicate,
            routed_by=result.routing.reason if result.routing else None,
        )
        return JSONResponse(out.model_dump(mode="json"), status_code=200 if result.duplicate else 201)

    @router.post("/api/work-orders/{number}/status", response_model=WorkOrderOut)
    async def change_status(number: str, body: StatusChange, actor: CurrentActor, service: Service) -> WorkOrderOut:
        return await _change(
            actor, service, number, lambda: service.update_status(number, body.status, actor, body.note)
        )

    @router.post("/api/work-orders/{number}/notes", response_model=WorkOrderOut)
    async def add_note(number: str, body: NoteIn, actor: CurrentActor, service: Service) -> WorkOrderOut:
        return await _change(actor, service, number, lambda: service.add_note(number, actor, body.note))

    @router.post("/api/work-orders/{number}/assignment", response_model=WorkOrderOut)
    async def reassign(number: str, body: Reassignment, actor: CurrentActor, service: Service) -> WorkOrderOut:
        return await _change(
            actor, service, number, lambda: service.reassign(number, body.department, body.mode, actor, body.note)
        )

    return router


async def _change(
    actor: Actor, service: WorkOrderService, number: str, change: Callable[[], Awaitable[WorkOrderRecord]]
) -> WorkOrderOut:
    """Make a change to an order the actor may see, and answer with the order as it is now."""
    try:
        await _seen_by(actor, service, number)
        order = await change()
    except (WorkOrderError, WorkflowError) as exc:
        raise _error(exc) from None
    return WorkOrderOut.of(order, service.clock(), with_steps=True)


async def _seen_by(actor: Actor, service: WorkOrderService, number: str) -> WorkOrderRecord:
    """The order, if it is in one of the actor's departments; otherwise the same 404 as for no such order."""
    order = await service.get(number)
    if not actor.may_see(order.department):
        raise WorkOrderNotFound(number)
    return order


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return iso(value) or ""
    text = str(value)
    # A cell starting with = + - @ would run as a formula in a spreadsheet (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


router = build_router()
