"""Request Tracker 5 as the work-order backend, through its REST 2.0 API (`CRM_BACKEND=rt`).

Our own database keeps a mirror of every order (number, contact, steps, SLA alerts: RT knows nothing of our
contacts or deadlines), and every change is pushed to RT inside the same transaction, so either both sides change
or neither does. Filing is the exception, since a citizen's report must never be lost: when RT does not take a
new order, it is kept here with `push_pending` and pushed by the RT sync later (with backoff; a ticket RT did
create before its answer was lost is found by its WorkOrderNumber, not created twice). One RT queue per
department (named RT_QUEUE_PREFIX + department code, "dispatch" included); custom fields Category, Channel and
WorkOrderNumber (applied to those queues, or global).

RT's default lifecycle is used as is, so any RT installation works:

    ours            RT status (pushed)     RT status → ours (flowing back)
    new, assigned   new                    open/stalled → in_progress (reopened if it was finished)
    in_progress     open                   resolved → resolved
    reopened        open                   rejected → returned (and the ticket moves to the dispatch queue)
    returned        (queue → dispatch)     deleted → closed
    resolved/closed resolved               queue moved → transferred (dispatch queue: returned)

Changes made in RT flow back by polling RT's transactions after a cursor kept in our database (`sync()`), so none
is lost while the gateway is down; a webhook from an RT scrip can only hint "poll now".

RT pitfalls handled here: many refusals come back as HTTP 200 with a message, and at create a custom field not
applied to the queue is dropped silently; so every write is read back and checked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import structlog
from sqlalchemy import select

from crm_adapter.backend import BackendUnavailable, ChangeBatch, InvalidWorkOrder, WorkOrderRecord
from crm_adapter.cursors import CursorStore
from crm_adapter.embedded import EmbeddedBackend
from crm_adapter.models import Department, WorkOrder
from crm_adapter.rows import add_step, lock_order, order_record, read_record
from crm_adapter.workflow import DISPATCH_DESK, SYSTEM, Actor, Role, Status
from gateway.clock import utc
from gateway.storage import Database

log = structlog.get_logger(__name__)

CURSOR_NAME = "rt:transactions"
PRIORITY = {"low": 20, "normal": 50, "high": 80, "urgent": 100}

# Our status → the RT status we push (None: leave RT's status as it is).
RT_STATUS: dict[str, str | None] = {
    Status.NEW: "new",
    Status.ASSIGNED: "new",
    Status.IN_PROGRESS: "open",
    Status.REOPENED: "open",
    Status.RETURNED: None,
    Status.RESOLVED: "resolved",
    Status.CLOSED: "resolved",
}
# Our statuses that agree with an RT status (a transaction that leaves them agreeing changes nothing here).
AGREES: dict[str, frozenset[str]] = {
    "new": frozenset({Status.NEW, Status.ASSIGNED, Status.RETURNED}),
    "open": frozenset({Status.IN_PROGRESS, Status.REOPENED, Status.RETURNED}),
    "stalled": frozenset({Status.IN_PROGRESS, Status.REOPENED, Status.RETURNED}),
    "resolved": frozenset({Status.RESOLVED, Status.CLOSED}),
    "rejected": frozenset({Status.RETURNED}),
    "deleted": frozenset({Status.CLOSED}),
}
FINISHED = frozenset({Status.RESOLVED, Status.CLOSED})


class RtClient:
    """The few REST 2.0 calls the adapter needs; raises BackendUnavailable on any failure or silent refusal."""

    def __init__(
        self, url: str, token: str, http: httpx.AsyncClient | None = None, timeout: float = 10.0
    ) -> None:
        if not url or not token:
            raise ValueError("CRM_BACKEND=rt needs RT_URL and RT_TOKEN")
        self.base = url.rstrip("/") + "/REST/2.0"
        self._own_http = http is None
        self.http = http or httpx.AsyncClient(timeout=timeout)
        self.timeout = timeout
        self.headers = {"Authorization": f"token {token}", "Content-Type": "application/json"}
        self._queue_ids: dict[str, str] = {}  # name → id
        self._queue_names: dict[str, str] = {}  # id → name

    async def close(self) -> None:
        if self._own_http:
            await self.http.aclose()

    async def call(
        self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        try:
            response = await self.http.request(
                method, self.base + path, json=json, params=params, headers=self.headers, timeout=self.timeout
            )
        except httpx.HTTPError as exc:
            raise BackendUnavailable(f"Request Tracker unreachable: {exc!r}") from None
        if response.status_code >= 400:
            raise BackendUnavailable(
                f"Request Tracker refused {method} {path}: {response.status_code} {response.text[:300]}"
            )
        try:
            return response.json()
        except ValueError:
            raise BackendUnavailable(f"Request Tracker answered {method} {path} with non-JSON") from None

    async def queue_id(self, name: str) -> str:
        if name not in self._queue_ids:
            await self._load_queues()
        if name not in self._queue_ids:
            raise BackendUnavailable(f"Request Tracker has no queue {name!r} (create one per department)")
        return self._queue_ids[name]

    async def queue_name(self, queue_id: str) -> str | None:
        if queue_id not in self._queue_names:
            await self._load_queues()
        return self._queue_names.get(queue_id)

    async def _load_queues(self) -> None:
        page = 1
        while True:
            body = await self.call(
                "GET", "/queues/all", params={"fields": "Name", "per_page": 100, "page": page}
            )
            for item in body.get("items", []):
                self._queue_ids[str(item["Name"])] = str(item["id"])
                self._queue_names[str(item["id"])] = str(item["Name"])
            if page >= int(body.get("pages") or 1):
                return
            page += 1

    async def ticket(self, ticket_id: str) -> dict[str, Any]:
        body = await self.call("GET", f"/ticket/{ticket_id}")
        if not isinstance(body, dict) or str(body.get("id")) != str(ticket_id):
            raise BackendUnavailable(f"Request Tracker has no ticket {ticket_id}")
        return body

    async def create_ticket(
        self,
        queue: str,
        subject: str,
        content: str,
        priority: int,
        due: datetime,
        custom_fields: dict[str, str],
    ) -> str:
        body = await self.call(
            "POST",
            "/ticket",
            json={
                "Queue": queue,
                "Subject": subject,
                "Content": content,
                "ContentType": "text/plain",
                "Priority": priority,
                "Due": utc(due).strftime("%Y-%m-%d %H:%M:%S"),
                "CustomFields": custom_fields,
            },
        )
        ticket_id = str(body.get("id", "")) if isinstance(body, dict) else ""
        if not ticket_id:
            raise BackendUnavailable(f"Request Tracker did not create the ticket: {body}")
        ticket = await self.ticket(ticket_id)
        stored = custom_field_values(ticket)
        dropped = [name for name, value in custom_fields.items() if stored.get(name) != value]
        if dropped:  # RT drops a custom field not applied to the queue without a word
            raise BackendUnavailable(
                f"Request Tracker dropped custom fields {dropped} on ticket {ticket_id}; "
                f"apply them to queue {queue!r}"
            )
        return ticket_id

    async def update_ticket(
        self, ticket_id: str, *, status: str | None = None, queue: str | None = None
    ) -> None:
        fields: dict[str, Any] = {}
        if status is not None:
            fields["Status"] = status
        if queue is not None:
            fields["Queue"] = queue
        if not fields:
            return
        messages = await self.call("PUT", f"/ticket/{ticket_id}", json=fields)
        # Refusals come back as 200 with a message ("Status 'x' isn't a valid status"): read back and compare.
        ticket = await self.ticket(ticket_id)
        if status is not None and ticket.get("Status") != status:
            raise BackendUnavailable(
                f"Request Tracker did not set status {status!r} on {ticket_id}: {messages}"
            )
        if queue is not None and str((ticket.get("Queue") or {}).get("id")) != await self.queue_id(queue):
            raise BackendUnavailable(
                f"Request Tracker did not move {ticket_id} to queue {queue!r}: {messages}"
            )

    async def comment(self, ticket_id: str, text: str) -> None:
        messages = await self.call(
            "POST", f"/ticket/{ticket_id}/comment", json={"Content": text, "ContentType": "text/plain"}
        )
        if not any(
            "added" in str(m).lower() for m in (messages if isinstance(messages, list) else [messages])
        ):
            raise BackendUnavailable(f"Request Tracker did not add the comment to {ticket_id}: {messages}")

    async def find_ticket(self, number: str) -> str | None:
        """The ticket carrying this WorkOrderNumber, if RT has one (a create whose answer was lost)."""
        body = await self.call(
            "GET", "/tickets", params={"query": f"'CF.{{WorkOrderNumber}}' = '{number}'", "per_page": 1}
        )
        items = body.get("items", []) if isinstance(body, dict) else []
        return str(items[0]["id"]) if items else None

    async def transactions_after(self, last_id: int, per_page: int = 100) -> list[dict[str, Any]]:
        """Ticket transactions with an id above last_id, oldest first (one page)."""
        body = await self.call(
            "POST",
            "/transactions",
            params={
                "fields": "ObjectId,Type,Field,OldValue,NewValue,Created,Creator",
                "orderby": "id",
                "order": "ASC",
                "per_page": per_page,
            },
            json=[
                {"field": "ObjectType", "value": "RT::Ticket"},
                {"field": "id", "operator": ">", "value": str(last_id)},
            ],
        )
        return list(body.get("items", [])) if isinstance(body, dict) else []


def custom_field_values(ticket: dict[str, Any]) -> dict[str, str]:
    values: dict[str, str] = {}
    for cf in ticket.get("CustomFields") or []:
        if cf.get("values"):
            values[str(cf.get("name"))] = str(cf["values"][0])
    return values


@dataclass
class RtMirror:
    """Pushes our changes to RT (see the module docstring for the status mapping)."""

    client: RtClient
    queue_prefix: str = ""

    def queue_of(self, department: str) -> str:
        return f"{self.queue_prefix}{department}"

    async def on_create(self, order: WorkOrder) -> None:
        try:
            await self.push(order)
        except BackendUnavailable as exc:
            # Kept here, pushed by the sync later: the citizen's report is filed either way.
            order.push_pending = True
            log.warning("rt.push_deferred", number=order.number, error=str(exc))

    async def push(self, order: WorkOrder) -> None:
        """Create the order's ticket (in its department's queue, with its current status)."""
        content = order.description + (f"\n\n地点 / Location: {order.location}" if order.location else "")
        if order.phone:
            content += f"\n联系电话 / Phone: {order.phone}"
        order.external_ref = await self.client.create_ticket(
            self.queue_of(order.department),
            f"[{order.number}] {order.title}",
            content,
            PRIORITY.get(order.priority, 50),
            order.due_at,
            {"Category": order.category, "Channel": order.channel, "WorkOrderNumber": order.number},
        )
        order.push_pending = False

    async def on_status(self, order: WorkOrder, old_status: str, note: str | None) -> None:
        target, before = RT_STATUS.get(order.status), RT_STATUS.get(old_status)
        if order.external_ref and target is not None and target != before:
            await self.client.update_ticket(order.external_ref, status=target)
        if order.external_ref and note:
            await self.client.comment(order.external_ref, f"[{order.status}] {note}")

    async def on_reassign(
        self, order: WorkOrder, old_department: str, old_status: str, note: str | None
    ) -> None:
        if not order.external_ref:
            return
        target, before = RT_STATUS.get(order.status), RT_STATUS.get(old_status)
        await self.client.update_ticket(
            order.external_ref,
            queue=self.queue_of(order.department),
            status=target if target is not None and target != before else None,
        )
        if note:
            await self.client.comment(order.external_ref, note)

    async def on_note(self, order: WorkOrder, note: str) -> None:
        if order.external_ref:
            await self.client.comment(order.external_ref, note)


class RtBackend(EmbeddedBackend):
    """Request Tracker 5 as the tracker of record for departments, with our database as the mirror."""

    name = "rt"

    def __init__(
        self,
        db: Database,
        client: RtClient,
        *,
        queue_prefix: str = "",
        number_prefix: str = "BJ",
        timezone: str = "Asia/Shanghai",
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.client = client
        self.rt = RtMirror(client, queue_prefix)
        kwargs: dict[str, Any] = {"clock": clock} if clock is not None else {}
        super().__init__(db, number_prefix=number_prefix, timezone=timezone, mirror=self.rt, **kwargs)
        self.cursors = CursorStore(db, self.clock)

    async def close(self) -> None:
        await self.client.close()

    async def push_pending(self, limit: int = 100) -> int:
        """Push the orders RT did not take when they were filed, oldest first; returns how many were pushed.
        Raises BackendUnavailable when RT still refuses (the caller backs off); what was pushed stays pushed."""
        async with self.db.sessions() as session:
            numbers = list(
                (
                    await session.execute(
                        select(WorkOrder.number)
                        .where(WorkOrder.push_pending.is_(True))
                        .order_by(WorkOrder.push_pending, WorkOrder.id)
                        .limit(limit)
                    )
                ).scalars()
            )
        pushed = 0
        for number in numbers:
            async with self.db.sessions() as session, session.begin():
                order = await lock_order(session, number)
                if not order.push_pending:
                    continue  # another worker pushed it meanwhile
                existing = await self.client.find_ticket(order.number)
                if existing is not None:
                    order.external_ref, order.push_pending = existing, False
                else:
                    await self.rt.push(order)
                assert order.external_ref is not None
                target = RT_STATUS.get(order.status)
                if target is not None and target != "new":  # it moved on while RT was away
                    await self.client.update_ticket(order.external_ref, status=target)
                note = f"Request Tracker ticket {order.external_ref}"
                add_step(session, order, SYSTEM, "pushed", self.clock(), note=note)
                pushed += 1
        if pushed:
            log.info("rt.pushed_pending", count=pushed)
        return pushed

    async def changes_since(self, cursor: str | None, limit: int = 100) -> ChangeBatch:
        """Pull RT's changes first (`sync`), then answer from our database's change feed."""
        try:
            await self.sync()
        except BackendUnavailable as exc:
            # Our own changes are all here already; RT's arrive with the next poll (the cursor did not move).
            log.warning("rt.sync_failed", error=str(exc))
        return await super().changes_since(cursor, limit)

    async def sync(self, max_pages: int = 50) -> list[WorkOrderRecord]:
        """Apply RT's ticket transactions after our cursor to our orders; return the orders that changed."""
        changed: list[WorkOrderRecord] = []
        last = int(await self.cursors.read(CURSOR_NAME) or 0)
        for _ in range(max_pages):
            items = await self.client.transactions_after(last)
            if not items:
                break
            for txn in items:
                record = await self._apply(txn)
                if record is not None:
                    changed.append(record)
                last = max(last, int(txn["id"]))
            await self.cursors.write(CURSOR_NAME, str(last))  # after each page: a crash re-reads at most one page
            if len(items) < 100:
                break
        return changed

    async def _apply(self, txn: dict[str, Any]) -> WorkOrderRecord | None:
        """Apply one RT transaction (a status change or a queue move) to the order of its ticket, if it is ours."""
        kind, field = txn.get("Type"), txn.get("Field")
        if kind != "Status" and not (kind == "Set" and field == "Queue"):
            return None
        order = await self._order_of_ticket(str(txn.get("ObjectId")))
        if order is None:
            return None  # a ticket that is not one of our orders
        creator = (txn.get("Creator") or {}).get("id", "?")
        actor = Actor(f"rt:{creator}", Role.SYSTEM)
        note = f"Request Tracker transaction {txn['id']}"
        new_value = str(txn.get("NewValue") or "")
        if kind == "Status":
            if order.status in AGREES.get(new_value, frozenset()):
                return None
            if new_value in ("open", "stalled", "new"):
                if order.status in FINISHED:
                    status = Status.REOPENED
                elif new_value == "new":
                    status = Status.NEW if order.department == DISPATCH_DESK else Status.ASSIGNED
                else:
                    status = Status.IN_PROGRESS
                return await self._apply_outside_change(order.number, actor, status=status.value, note=note)
            if new_value == "resolved":
                return await self._apply_outside_change(order.number, actor, status=Status.RESOLVED.value, note=note)
            if new_value == "deleted":
                return await self._apply_outside_change(order.number, actor, status=Status.CLOSED.value, note=note)
            if new_value == "rejected":
                record = await self._apply_outside_change(
                    order.number, actor, status=Status.RETURNED.value, department=DISPATCH_DESK, note=note
                )
                if record is not None and record.external_ref:
                    await self.client.update_ticket(record.external_ref, queue=self.rt.queue_of(DISPATCH_DESK))
                return record
            log.warning("rt.unknown_status", ticket=order.external_ref, status=new_value)
            return None
        queue = await self.client.queue_name(new_value)
        if queue is None or not queue.startswith(self.rt.queue_prefix):
            log.warning("rt.unknown_queue", ticket=order.external_ref, queue=new_value)
            return None
        department = queue[len(self.rt.queue_prefix) :]
        if department == order.department:
            return None
        if department == DISPATCH_DESK:
            status = Status.RETURNED
        elif order.status in FINISHED:
            status = Status(order.status)
        else:
            status = Status.ASSIGNED
        return await self._apply_outside_change(
            order.number, actor, status=status.value, department=department, note=note
        )

    async def _order_of_ticket(self, ticket_id: str) -> WorkOrderRecord | None:
        async with self.db.sessions() as session:
            order = (
                await session.execute(select(WorkOrder).where(WorkOrder.external_ref == ticket_id))
            ).scalar_one_or_none()
            return None if order is None else order_record(order)

    async def _apply_outside_change(
        self,
        number: str,
        actor: Actor,
        *,
        status: str | None = None,
        department: str | None = None,
        note: str | None = None,
    ) -> WorkOrderRecord | None:
        """A change made in RT: apply it to our order without pushing it back (RT has it already). Returns None
        when there was nothing to change."""
        async with self.db.sessions() as session, session.begin():
            order = await lock_order(session, number)
            old_status, old_department = order.status, order.department
            new_status = status or old_status
            new_department = department or old_department
            if new_status == old_status and new_department == old_department:
                return None
            moved = new_department != old_department
            if moved and await session.get(Department, new_department) is None:
                raise InvalidWorkOrder(f"unknown department {new_department!r}")
            now = self.clock()
            order.status, order.department, order.updated_at = new_status, new_department, now
            if new_status == Status.RESOLVED and old_status != Status.RESOLVED:
                order.resolved_at = now
            add_step(
                session,
                order,
                actor,
                "dispatch_outside" if moved else "status",
                self.clock(),
                from_status=old_status,
                to_status=new_status,
                from_department=old_department if moved else None,
                to_department=new_department if moved else None,
                note=note,
            )
            return await read_record(session, order)
