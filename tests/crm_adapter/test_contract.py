"""ONE contract for every work-order backend: the embedded one on SQLite and on PostgreSQL, and Request Tracker 5
(a real RT from Debian's request-tracker5, see conftest.py), each run through the same tests."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crm_adapter.backend import (
    InvalidWorkOrder,
    NewWorkOrder,
    OrderFilter,
    WorkOrderBackend,
    WorkOrderNotFound,
)
from crm_adapter.embedded import EmbeddedBackend
from crm_adapter.routing import load_routing
from crm_adapter.rt import RtBackend, RtClient
from crm_adapter.workflow import Actor, DispatchMode, Role, WorkflowError
from gateway.storage import Database
from tests.crm_adapter import rt_instance
from tests.crm_adapter.conftest import add_contact, open_database

DISPATCHER = Actor("desk:wang", Role.DISPATCHER)
DEPT = Actor("dept:li", Role.DEPARTMENT)
AGENT = Actor("agent:zhao", Role.AGENT)


class Harness:
    def __init__(self, backend: WorkOrderBackend, db: Database, contact_id: str) -> None:
        self.backend = backend
        self.db = db
        self.contact_id = contact_id

    def new(
        self, department: str = "urban_management", status: str = "assigned", **kw: object
    ) -> NewWorkOrder:
        fields: dict[str, object] = {
            "category": "report",
            "title": "路灯不亮",
            "description": "人民路56号门口的路灯不亮了",
            "location": "滨江市人民路56号（近地铁站B口）",
            "contact_id": self.contact_id,
            "channel": "sms",
            "department": department,
            "status": status,
            "due_at": datetime.now(UTC) + timedelta(days=3),
            "actor": Actor("bot", Role.BOT),
        }
        fields.update(kw)
        return NewWorkOrder(**fields)  # type: ignore[arg-type]


@pytest.fixture(
    params=[
        "embedded-sqlite",
        pytest.param("embedded-postgres", marks=pytest.mark.postgres),
        "rt",
    ]
)
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    async with AsyncExitStack() as stack:
        db = await open_database(
            "postgres" if request.param.endswith("postgres") else "sqlite", stack, tmp_path
        )
        backend: EmbeddedBackend
        if request.param == "rt":
            server: rt_instance.RtInstance = request.getfixturevalue("rt_server")
            backend = RtBackend(db, RtClient(server.url, server.token))
        else:
            backend = EmbeddedBackend(db)
        stack.push_async_callback(backend.close)
        await backend.sync_departments(list(load_routing().departments.values()))
        yield Harness(backend, db, await add_contact(db))


async def test_create_and_get(harness: Harness) -> None:
    created = await harness.backend.create(harness.new())
    assert re.fullmatch(r"BJ-\d{8}-\d{4}", created.number)
    assert created.number.endswith("-0001")
    again = await harness.backend.get(created.number)
    assert again.number == created.number and again.status == "assigned"
    assert again.location == "滨江市人民路56号（近地铁站B口）"  # kept whole
    assert again.department == "urban_management" and again.contact_id == harness.contact_id
    assert [s.action for s in again.steps] == ["created"]
    assert again.steps[0].actor == "bot" and again.steps[0].to_status == "assigned"
    second = await harness.backend.create(harness.new(department="dispatch", status="new"))
    assert second.number.endswith("-0002")


async def test_find_filters(harness: Harness) -> None:
    a = await harness.backend.create(harness.new())
    b = await harness.backend.create(
        harness.new(department="dispatch", status="new", due_at=datetime.now(UTC) - timedelta(hours=1))
    )
    assert {o.number for o in await harness.backend.find(OrderFilter(contact_id=harness.contact_id))} == {
        a.number,
        b.number,
    }
    assert [o.number for o in await harness.backend.find(OrderFilter(status=("new",)))] == [b.number]
    assert [o.number for o in await harness.backend.find(OrderFilter(department="urban_management"))] == [
        a.number
    ]
    assert [o.number for o in await harness.backend.find(OrderFilter(overdue_at=datetime.now(UTC)))] == [
        b.number
    ]
    assert [o.number for o in await harness.backend.find(OrderFilter(limit=1))] == [b.number]  # newest first
    assert [o.number for o in await harness.backend.find(OrderFilter(limit=1, offset=1))] == [a.number]


async def test_status_moves_and_refusals(harness: Harness) -> None:
    order = await harness.backend.create(harness.new())
    with pytest.raises(WorkflowError):
        await harness.backend.update_status(order.number, "closed", DEPT)
    with pytest.raises(WorkflowError):
        await harness.backend.update_status(order.number, "in_progress", Actor("citizen", Role.CITIZEN))
    assert (await harness.backend.get(order.number)).status == "assigned"  # nothing changed
    await harness.backend.update_status(order.number, "in_progress", DEPT)
    done = await harness.backend.update_status(order.number, "resolved", DEPT, "换了灯泡 / bulb replaced")
    assert done.status == "resolved" and done.resolved_at is not None
    closed = await harness.backend.update_status(order.number, "closed", AGENT, "市民满意")
    reopened = await harness.backend.update_status(closed.number, "reopened", AGENT, "又不亮了")
    assert reopened.status == "reopened" and reopened.resolved_at is None
    steps = [(s.from_status, s.to_status, s.actor) for s in reopened.steps]
    assert steps[1:] == [
        ("assigned", "in_progress", "dept:li"),
        ("in_progress", "resolved", "dept:li"),
        ("resolved", "closed", "agent:zhao"),
        ("closed", "reopened", "agent:zhao"),
    ]
    assert reopened.steps[2].note == "换了灯泡 / bulb replaced"


async def test_notes(harness: Harness) -> None:
    order = await harness.backend.create(harness.new())
    noted = await harness.backend.add_note(order.number, AGENT, "市民来电补充：灯杆编号 A-113")
    assert noted.steps[-1].action == "note" and noted.steps[-1].note == "市民来电补充：灯杆编号 A-113"
    assert noted.status == "assigned"
    with pytest.raises(InvalidWorkOrder):
        await harness.backend.add_note(order.number, AGENT, "   ")


async def test_dispatch_direct_transfer_return(harness: Harness) -> None:
    order = await harness.backend.create(harness.new(department="dispatch", status="new"))
    routed = await harness.backend.reassign(order.number, "transport", DispatchMode.DIRECT, DISPATCHER)
    assert (routed.department, routed.status) == ("transport", "assigned")
    moved = await harness.backend.reassign(
        order.number, "urban_management", DispatchMode.TRANSFER, DEPT, "路灯归城管"
    )
    assert (moved.department, moved.status) == ("urban_management", "assigned")
    back = await harness.backend.reassign(order.number, "", DispatchMode.RETURN, DEPT, "不是我们的")
    assert (back.department, back.status) == ("dispatch", "returned")
    again = await harness.backend.reassign(order.number, "utilities", DispatchMode.DIRECT, DISPATCHER)
    assert (again.department, again.status) == ("utilities", "assigned")
    assert [s.action for s in again.steps] == [
        "created",
        "dispatch_direct",
        "dispatch_transfer",
        "dispatch_return",
        "dispatch_direct",
    ]
    with pytest.raises(WorkflowError):
        await harness.backend.reassign(order.number, "housing", DispatchMode.DIRECT, DISPATCHER)
    with pytest.raises(InvalidWorkOrder):
        await harness.backend.reassign(order.number, "ministry_of_magic", DispatchMode.TRANSFER, DEPT)


async def test_changes_since_a_cursor(harness: Harness) -> None:
    first = await harness.backend.changes_since(None)
    assert first.changes == []
    order = await harness.backend.create(harness.new())
    await harness.backend.update_status(order.number, "in_progress", DEPT)
    await harness.backend.add_note(order.number, DEPT, "not a status change")
    batch = await harness.backend.changes_since(first.cursor)
    assert [(c.number, c.from_status, c.to_status) for c in batch.changes] == [
        (order.number, None, "assigned"),
        (order.number, "assigned", "in_progress"),
    ]
    await harness.backend.update_status(order.number, "resolved", DEPT)
    later = await harness.backend.changes_since(batch.cursor)
    assert [(c.from_status, c.to_status) for c in later.changes] == [("in_progress", "resolved")]
    assert (await harness.backend.changes_since(later.cursor)).changes == []


async def test_unknown_things(harness: Harness) -> None:
    with pytest.raises(WorkOrderNotFound):
        await harness.backend.get("BJ-20000101-0001")
    with pytest.raises(WorkOrderNotFound):
        await harness.backend.update_status("BJ-20000101-0001", "in_progress", DEPT)
    with pytest.raises(InvalidWorkOrder):
        await harness.backend.create(harness.new(contact_id="nobody"))
    with pytest.raises(InvalidWorkOrder):
        await harness.backend.create(harness.new(category="gossip"))
    # A refused create does not use up a number.
    assert (await harness.backend.create(harness.new())).number.endswith("-0001")
