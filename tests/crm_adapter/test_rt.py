"""Request Tracker specifics: what the ticket looks like in RT, changes made in RT flowing back to our order (by
polling transactions after a cursor), and RT's pitfalls (refusals as HTTP 200, an unreachable RT)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.launch import free_port
from crm_adapter.backend import BackendUnavailable, NewWorkOrder, WorkOrderNotFound
from crm_adapter.events import WorkOrderEvent
from crm_adapter.routing import load_routing
from crm_adapter.rt import RtBackend, RtClient, custom_field_values
from crm_adapter.service import FileRequest, build_work_orders
from crm_adapter.workflow import Actor, DispatchMode, Role
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


async def test_an_order_filed_while_rt_is_down_is_kept_and_pushed_later(
    rt_server: RtInstance, db: Database
) -> None:
    client = RtClient(f"http://127.0.0.1:{free_port()}", rt_server.token, timeout=2)
    # Numbers of its own: RT lives for the whole session, each test's database starts numbering afresh.
    backend = RtBackend(db, client, number_prefix=f"P{uuid.uuid4().hex[:6]}")
    await backend.sync_departments(list(load_routing().departments.values()))
    contact = await add_contact(db)
    # RT is down: the citizen's report is filed here all the same, waiting to be pushed.
    kept = await backend.create(new_order(contact))
    assert kept.push_pending and kept.external_ref is None
    moved = await backend.update_status(kept.number, "in_progress", DEPT)  # nothing to push to RT yet
    lost = await backend.create(new_order(contact, department="transport"))
    with pytest.raises(BackendUnavailable):
        await backend.push_pending()
    assert (await backend.get(kept.number)).push_pending
    # Local changes are still listed while RT is away (its own arrive with the next poll).
    assert [c.to_status for c in (await backend.changes_since(None)).changes] == ["assigned", "in_progress", "assigned"]

    # RT comes back. One create had reached RT before its answer was lost: found by its number, not made twice.
    client.base = f"{rt_server.url}/REST/2.0"
    made = await raw(rt_server, "POST", "/ticket", {
        "Queue": "transport", "Subject": f"[{lost.number}] 路灯不亮", "CustomFields": {"WorkOrderNumber": lost.number},
    })  # fmt: skip
    assert await backend.push_pending() == 2
    assert await backend.push_pending() == 0
    pushed = await backend.get(kept.number)
    assert not pushed.push_pending and pushed.external_ref and moved.status == "in_progress"
    ticket = await raw(rt_server, "GET", f"/ticket/{pushed.external_ref}")
    assert ticket["Status"] == "open" and custom_field_values(ticket)["WorkOrderNumber"] == kept.number
    assert pushed.steps[-1].action == "pushed"
    assert (await backend.get(lost.number)).external_ref == str(made["id"])

    # A change to a pushed order while RT is down again changes nothing on either side.
    client.base = f"http://127.0.0.1:{free_port()}/REST/2.0"
    with pytest.raises(BackendUnavailable):
        await backend.update_status(kept.number, "resolved", DEPT)
    assert (await backend.get(kept.number)).status == "in_progress"
    with pytest.raises(WorkOrderNotFound):
        await backend.get("BJ-19990101-0001")
    await backend.close()


async def test_changes_made_in_rt_while_we_were_down_arrive_after_a_restart(
    rt_server: RtInstance, db: Database
) -> None:
    first = RtBackend(db, RtClient(rt_server.url, rt_server.token))
    await first.sync_departments(list(load_routing().departments.values()))
    order = await first.create(new_order(await add_contact(db)))
    await first.sync()
    await first.close()  # the gateway stops; staff keep working in RT
    await raw(rt_server, "PUT", f"/ticket/{order.external_ref}", {"Status": "resolved"})
    again = RtBackend(db, RtClient(rt_server.url, rt_server.token))  # a new process, the same database
    assert [(o.number, o.status) for o in await again.sync()] == [(order.number, "resolved")]
    assert await again.sync() == []
    await again.close()


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
