"""/api/work-orders under a real FastAPI app (the router as the gateway will include it, a Services-like state)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI

from crm_adapter.api import router
from crm_adapter.service import build_work_orders
from gateway.storage import Database
from tests.crm_adapter.conftest import FakeClock, add_contact

TOKEN = "s3cret-admin"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def api(sqlite_db: Database, clock: FakeClock) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    settings = SimpleNamespace(admin_token=TOKEN)
    app = FastAPI()
    app.state.services = SimpleNamespace(
        settings=settings, work_orders=await build_work_orders(settings, sqlite_db, clock=clock)
    )
    app.include_router(router)
    contact = await add_contact(sqlite_db)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        yield client, contact


def report(contact: str, **kw: object) -> dict[str, object]:
    return {
        "category": "report",
        "description": "人民路56号门口的路灯不亮了",
        "location": "滨江市人民路56号",
        "contact_id": contact,
        "channel": "webchat",
        **kw,
    }


async def test_refuses_without_the_token(api: tuple[httpx.AsyncClient, str], sqlite_db: Database) -> None:
    client, _ = api
    assert (await client.get("/api/work-orders")).status_code == 401
    assert (
        await client.get("/api/work-orders", headers={"Authorization": "Bearer wrong"})
    ).status_code == 403  # the one admin-token check of every staff route (gateway/auth.py)
    app = FastAPI()
    app.state.services = SimpleNamespace(settings=SimpleNamespace(admin_token=""), work_orders=None)
    app.include_router(router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as empty:
        response = await empty.get("/api/work-orders", headers={"Authorization": "Bearer "})
        assert response.status_code == 403 and "ADMIN_TOKEN" in response.json()["detail"]


async def test_create_read_and_move(api: tuple[httpx.AsyncClient, str], clock: FakeClock) -> None:
    client, contact = api
    created = await client.post("/api/work-orders", json=report(contact), headers=AUTH)
    assert created.status_code == 201, created.text
    body = created.json()
    number = body["order"]["number"]
    assert number == "BJ-20261123-0001" and body["order"]["department"] == "urban_management"
    assert body["routed_by"] == "keywords:路灯" and body["duplicate"] is False
    again = await client.post(
        "/api/work-orders", json=report(contact, description="人民路56号的路灯还是不亮"), headers=AUTH
    )
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert again.json()["order"]["number"] == number

    r = await client.post(f"/api/work-orders/{number}/status", json={"status": "in_progress"}, headers=AUTH)
    assert r.status_code == 200 and r.json()["status"] == "in_progress"
    r = await client.post(f"/api/work-orders/{number}/status", json={"status": "new"}, headers=AUTH)
    assert r.status_code == 409 and "not an allowed move" in r.json()["detail"]
    r = await client.post(f"/api/work-orders/{number}/notes", json={"note": "灯杆编号 A-113"}, headers=AUTH)
    assert r.json()["steps"][-1]["note"] == "灯杆编号 A-113"
    r = await client.post(
        f"/api/work-orders/{number}/assignment",
        json={"mode": "transfer", "department": "utilities", "note": "电力问题"},
        headers=AUTH,
    )
    assert r.status_code == 200 and r.json()["department"] == "utilities"
    read = await client.get(f"/api/work-orders/{number}", headers=AUTH)
    assert [s["action"] for s in read.json()["steps"]] == [
        "created",
        "linked_report",
        "status",
        "note",
        "dispatch_transfer",
    ]
    assert read.json()["report_count"] == 2


async def test_bad_input_is_4xx_with_a_reason(api: tuple[httpx.AsyncClient, str]) -> None:
    client, contact = api
    cases = [
        ("POST", "/api/work-orders", report(contact, category="gossip"), 422),
        ("POST", "/api/work-orders", report("nobody"), 422),
        ("POST", "/api/work-orders", report(contact, description=""), 422),
        ("POST", "/api/work-orders", {"category": "report"}, 422),
        ("GET", "/api/work-orders/BJ-20000101-0001", None, 404),
        ("POST", "/api/work-orders/BJ-20000101-0001/status", {"status": "resolved"}, 404),
        ("POST", "/api/work-orders/BJ-20000101-0001/notes", {"note": "x"}, 404),
        ("GET", "/api/work-orders?limit=0", None, 422),
        ("GET", "/api/work-orders?status=sleeping", None, 422),
        ("GET", "/api/work-orders?created_from=2026-11-01T00:00:00", None, 422),  # no time zone
        ("GET", "/api/work-orders?created_from=yesterday", None, 422),
    ]
    for method, path, body, status in cases:
        response = await client.request(method, path, json=body, headers=AUTH)
        assert response.status_code == status, (path, body, response.text)
        assert response.json()["detail"]
    number = (await client.post("/api/work-orders", json=report(contact), headers=AUTH)).json()["order"][
        "number"
    ]
    r = await client.post(
        f"/api/work-orders/{number}/assignment", json={"mode": "transfer", "department": "mars"}, headers=AUTH
    )
    assert r.status_code == 422 and "mars" in r.json()["detail"]
    r = await client.post(
        f"/api/work-orders/{number}/assignment", json={"mode": "direct", "department": "tax"}, headers=AUTH
    )
    assert r.status_code == 409


async def test_list_filters_pages_and_csv(api: tuple[httpx.AsyncClient, str], clock: FakeClock) -> None:
    client, contact = api
    texts = [
        "人民路1号路灯不亮",
        "滨江路8号工地夜间施工噪音",
        "中山路3号井盖丢了",
        '=HYPERLINK("x") 公交站牌坏了',
    ]
    numbers = []
    for text in texts:
        r = await client.post(
            "/api/work-orders", json=report(contact, description=text, location=None), headers=AUTH
        )
        numbers.append(r.json()["order"]["number"])
        clock.advance(minutes=1)
    page = (await client.get("/api/work-orders?limit=3", headers=AUTH)).json()
    assert [o["number"] for o in page["items"]] == numbers[::-1][:3] and page["next_offset"] == 3
    rest = (await client.get("/api/work-orders?limit=3&offset=3", headers=AUTH)).json()
    assert [o["number"] for o in rest["items"]] == [numbers[0]] and rest["next_offset"] is None
    by_dept = (await client.get("/api/work-orders?department=environment", headers=AUTH)).json()
    assert [o["number"] for o in by_dept["items"]] == [numbers[1]]
    assert (await client.get("/api/work-orders?overdue=true", headers=AUTH)).json()["items"] == []
    clock.advance(days=10)
    overdue = (await client.get("/api/work-orders?overdue=true", headers=AUTH)).json()["items"]
    assert len(overdue) == 4 and all(o["overdue"] for o in overdue)
    mine = await client.get(
        f"/api/work-orders?contact_id={contact}&status=assigned&status=new"
        "&created_from=2026-11-23T00:00:00%2B08:00&created_to=2026-11-24T00:00:00%2B08:00",
        headers=AUTH,
    )
    assert len(mine.json()["items"]) == 4
    exported = await client.get("/api/work-orders.csv?overdue=true", headers=AUTH)
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text.lstrip("\ufeff"))))
    assert {r["number"] for r in rows} == set(numbers)
    assert all(r["overdue"] == "True" for r in rows)
    assert any(r["title"].startswith("'=HYPERLINK") for r in rows)  # no formula injection
    assert (await client.get("/api/work-orders.csv")).status_code == 401


async def test_phone_photos_and_satisfaction_are_shown(api: tuple[httpx.AsyncClient, str]) -> None:
    client, contact = api
    body = report(contact, phone="13812345678", photos=["media/ab/abc.jpg"])
    created = (await client.post("/api/work-orders", json=body, headers=AUTH)).json()["order"]
    assert (created["phone"], created["photos"], created["satisfaction"]) == ("13812345678", ["media/ab/abc.jpg"], None)
    assert created["push_pending"] is False
    too_many = report(contact, description="另一件事", photos=[f"p{i}" for i in range(21)])
    assert (await client.post("/api/work-orders", json=too_many, headers=AUTH)).status_code == 422
