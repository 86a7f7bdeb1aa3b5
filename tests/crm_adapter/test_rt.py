"""Request Tracker specifics: what the ticket looks like in RT, changes made in RT flowing back to our order
(by
polling transactions after a cursor), and RT's pitfalls (refusals as HTTP 200, an unreachable RT)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from crm_adapter.backend import BackendUnavailable, NewWorkOrder, WorkOrderNotFound
from crm_adapter.events import WorkOrderEvent
from crm_adapter.routing import load_routing
from crm_adapter.rt import RtBackend, RtClient, custom_field_values
from crm_adapter.service import FileRequest, build_work_orders
from crm_adapter.workflow import Actor, DispatchMode, Role
from gateway.launch import free_port
from gateway.storage import Database
from tests.crm_adapter.conftest import add_contact, open_database
from tests.crm_adapter.rt_instance import RtInstance

DEPT = Actor("dept:li", Role.DEPARTMENT)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    async with AsyncExitStack() as stack:
        yield await open_database("sqlite", stack, tmp_path)


@pytest.fixture
async def rt(rt_server: RtInstance, db: Database) -> AsyncIterator[RtBackend]:
    backend = RtBackend(db, RtClient(rt_server.url, rt_server.token))
    await backend.sync_departments(list(load_routing().departments.values()))
    yield backend
    await backend.close()


async def raw(server: RtInstance, method: str, path: str, body: Any = None) -> Any:
    """Act in RT as a department's staff would, straight through its API."""
    async with httpx.AsyncClient() as http:
        response = await http.request(
            method,
            f"{server.url}/REST/2.0{path}",
            json=body,
            headers={"Authorization": f"token {server.token}", "Content-Type": "application/json"},
        )
        response.raise_for_status()
        return response.json()


def new_order(contact_id: str, department: str = "urban_management") -> NewWorkOrder:
    return NewWorkOrder(
        category="report",
        title="路灯不亮",
        description="人民路56号门口的路灯不亮了",
        location="人民路56号",
        contact_id=contact_id,
        channel="wechat",
        department=department,
        status="assigned",
        due_at=datetime.now(UTC) + timedelta(days=3),
    )


async def test_the_ticket_in_rt(rt: RtBackend, rt_server: RtInstance, db: Database) -> None:
    order = await rt.create(new_order(await add_contact(db)))
    assert order.external_ref
    ticket = await raw(rt_server, "GET", f"/ticket/{order.external_ref}")
    assert ticket["Subject"] == f"[{order.number}] 路灯不亮"
    assert ticket["Status"] == "new"
    assert ticket["Queue"]["id"] == await rt.client.queue_id("urban_management")
    assert custom_field_values(ticket) == {
        "Category": "report",
        "Channel": "wechat",
        "WorkOrderNumber": order.number,
    }
    await rt.update_status(order.number, "in_progress", DEPT)
    assert (await raw(rt_server, "GET", f"/ticket/{order.external_ref}"))["Status"] == "open"
    await rt.reassign(order.number, "", DispatchMode.RETURN, DEPT, "不归我们管")
    ticket = await raw(rt_server, "GET", f"/ticket/{order.external_ref}")
    assert ticket["Queue"]["id"] == await rt.client.queue_id("dispatch")


async def test_changes_in_rt_flow_back(rt: RtBackend, rt_server: RtInstance, db: Database) -> None:
    contact = await add_contact(db)
    order = await rt.create(new_order(contact))
    other = await rt.create(new_order(contact, department="transport"))
    start = await rt.changes_since(None)
    ticket = order.external_ref
    # Department staff work the ticket in RT.
    await raw(rt_server, "PUT", f"/ticket/{ticket}", {"Status": "open"})
    await raw(
        rt_server,
        "POST",
        f"/ticket/{ticket}/correspond",
        {"Content": "已修复", "ContentType": "text/plain", "Status": "resolved"},
    )
    await raw(rt_server, "PUT", f"/ticket/{other.external_ref}", {"Queue": "dispatch"})  # "not ours"
    batch = await rt.changes_since(start.cursor)
    assert [(c.number, c.from_status, c.to_status, c.actor) for c in batch.changes] == [
        (order.number, "assigned", "in_progress", "rt:root"),
        (order.number, "in_progress", "resolved", "rt:root"),
        (other.number, "assigned", "returned", "rt:root"),
    ]
    assert (await rt.get(order.number)).status == "resolved"
    assert (await rt.get(other.number)).department == "dispatch"
    # Nothing is read twice, and a reopen in RT reopens ours.
    assert (await rt.changes_since(batch.cursor)).changes == []
    await raw(rt_server, "PUT", f"/ticket/{ticket}", {"Status": "open"})
    assert [c.to_status for c in (await rt.changes_since(batch.cursor)).changes] == ["reopened"]
    # A transfer between department queues in RT is a transfer here.
    await raw(rt_server, "PUT", f"/ticket/{ticket}", {"Queue": "utilities"})
    await rt.sync()
    moved = await rt.get(order.number)
    assert (moved.department, moved.status) == ("utilities", "assigned")


async def test_a_refusal_as_http_200_is_an_error(rt: RtBackend, db: Database) -> None:
    order = await rt.create(new_order(await add_contact(db)))
    assert order.external_ref
    with pytest.raises(BackendUnavailable, match="valid status|did not set"):
        await rt.client.update_ticket(order.external_ref, status="bogus")
    with pytest.raises(BackendUnavailable, match="no queue"):
        await rt.client.update_ticket(order.external_ref, queue="no_such_queue")


async def test_unreachable_rt_changes_nothing(db: Database) -> None:
    backend = RtBackend(db, RtClient(f"http://127.0.0.1:{free_port()}", "token", timeout=2))
    await backend.sync_departments(list(load_routing().departments.values()))
    contact = await add_contact(db)
    with pytest.raises(BackendUnavailable):
        await backend.create(new_order(contact))
    with pytest.raises(WorkOrderNotFound):
        await backend.get(f"BJ-{datetime.now(UTC).astimezone().strftime('%Y%m%d')}-0001")
    assert await backend.count() == 0
    # Local changes are still listed while RT is away (its own arrive with the next poll).
    assert (await backend.changes_since(None)).changes == []
    await backend.close()


async def test_build_with_crm_backend_rt(rt_server: RtInstance, db: Database) -> None:
    settings = type("S", (), {"crm_backend": "rt", "rt_url": rt_server.url, "rt_token": rt_server.token})()
    service = await build_work_orders(settings, db)
    assert service.backend.name == "rt"
    result = await service.file(
        FileRequest(
            category="complaint",
            description="8路公交车司机拒载",
            contact_id=await add_contact(db),
            channel="telegram",
        )
    )
    assert result.order.department == "transport" and result.order.external_ref
    # A change made in RT comes back as an event for the inbox and the citizen.
    events: list[WorkOrderEvent] = []

    async def publish(event: WorkOrderEvent) -> None:
        events.append(event)

    service.publish = publish
    await service.sync_outside()  # catch up with everything so far
    events.clear()
    await raw(rt_server, "PUT", f"/ticket/{result.order.external_ref}", {"Status": "resolved"})
    await service.sync_outside()
    assert [(e.kind, e.number, e.status, e.source, e.channel) for e in events] == [
        ("status_changed", result.order.number, "resolved", "rt", "telegram")
    ]
    await service.close()
