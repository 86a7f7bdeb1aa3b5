"""Staff see their own departments only; logins neither stall the server nor lock a known account out; agents
change their password and admins deactivate agents, with sessions ended. Against the real app (create_app's
routes, a real database)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.message import InboundMessage
from handoff.api import _QueueFilter
from tests.handoff.support import ADMIN_EMAIL, ADMIN_PASSWORD, ADMIN_TOKEN, inbox_app, inbox_settings, login

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[Any]:
    async with inbox_app(inbox_settings(tmp_path)) as parts:
        yield parts


def client_from(app: Any, address: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(address, 40000)),
                             base_url="http://testserver")


async def make_agent(client: httpx.AsyncClient, email: str, departments: list[str], role: str = "agent") -> int:
    response = await client.post("/api/inbox/agents", headers=ADMIN, json={
        "email": email, "password": "password-123", "name": email.split("@")[0], "role": role,
        "departments": departments})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def test_agents_see_and_act_on_their_departments_only(app: Any) -> None:
    fastapi_app, services, client = app
    await make_agent(client, "li@bj.gov.cn", ["hotline"])
    await make_agent(client, "tax@bj.gov.cn", ["tax"], role="supervisor")
    await make_agent(client, "street@bj.gov.cn", ["urban_management"])
    services.bot.slots = {"handoff_requested": True}
    outcome = await services.pipeline.handle(InboundMessage(
        channel="webchat", channel_account="default", external_user_id="citizen-scope-1", external_message_id="s1",
        text="转人工 我的身份证号110101199003078515"))
    conversation = outcome.conversation_id
    contact = (await client.get(f"/api/inbox/conversations/{conversation}", headers=ADMIN)).json()["contact"]["id"]
    filed = await client.post("/api/work-orders", headers=ADMIN, json={
        "category": "report", "description": "人民路56号路灯不亮", "contact_id": contact,
        "channel": "webchat", "location": "人民路56号"})
    assert filed.status_code == 201, filed.text
    number = filed.json()["order"]["number"]
    assert filed.json()["order"]["department"] == "urban_management"

    async with client_from(fastapi_app, "10.1.0.1") as tax:
        csrf = await login(tax, "tax@bj.gov.cn", "password-123")
        headers = {"X-CSRF-Token": csrf}
        listed = (await tax.get("/api/inbox/conversations", params={"status": "pending,open,bot"})).json()
        assert listed["conversations"] == []
        assert (await tax.get(f"/api/inbox/conversations/{conversation}")).status_code == 404
        for action in ("claim", "resolve", "hand-back"):
            assert (await tax.post(f"/api/inbox/conversations/{conversation}/{action}", headers=headers)
                    ).status_code == 404, action
        assert (await tax.post(f"/api/inbox/conversations/{conversation}/reply", headers=headers,
                               json={"text": "hi"})).status_code == 404
        assert (await tax.get(f"/api/work-orders/{number}")).status_code == 404
        assert (await tax.post(f"/api/work-orders/{number}/notes", headers=headers, json={"note": "x"})
                ).status_code == 404
        assert (await tax.get("/api/work-orders")).json()["items"] == []
        assert number not in (await tax.get("/api/work-orders.csv")).text
        assert (await tax.get("/api/work-orders", params={"department": "urban_management"})).json()["items"] == []

    async with client_from(fastapi_app, "10.1.0.2") as li:
        await login(li, "li@bj.gov.cn", "password-123")
        listed = (await li.get("/api/inbox/conversations")).json()["conversations"]
        assert [c["id"] for c in listed] == [conversation]
        assert (await li.get(f"/api/inbox/conversations/{conversation}")).status_code == 200
        assert (await li.get(f"/api/work-orders/{number}")).status_code == 404  # another department's order

    async with client_from(fastapi_app, "10.1.0.3") as street:
        await login(street, "street@bj.gov.cn", "password-123")
        assert (await street.get(f"/api/work-orders/{number}")).status_code == 200
        assert [o["number"] for o in (await street.get("/api/work-orders")).json()["items"]] == [number]

    assert (await client.get(f"/api/work-orders/{number}", headers=ADMIN)).status_code == 200  # admins see all
    # The live socket forwards only events about conversations in the agent's queues.
    handoff = services.handoff
    assert await _QueueFilter(handoff, ("tax",))(conversation) is False
    assert await _QueueFilter(handoff, ("hotline",))(conversation) is True
    assert await _QueueFilter(handoff, None)(conversation) is True


async def test_wrong_logins_do_not_stall_the_server(app: Any) -> None:
    fastapi_app, _, _ = app
    async with client_from(fastapi_app, "10.2.0.1") as client:
        guesses = [asyncio.create_task(client.post("/api/inbox/login", json={
            "email": f"guess{i}@bj.gov.cn", "password": "wrong-password"})) for i in range(32)]
        await asyncio.sleep(0.05)
        health = await client.get("/healthz")  # the event loop is free while argon2 runs in threads
        assert health.status_code == 200
        still_running = sum(not g.done() for g in guesses)
        codes = [r.status_code for r in await asyncio.gather(*guesses)]
    assert still_running >= 16, "the health check waited for the password hashing"
    assert set(codes) <= {401, 429} and codes.count(401) >= 30


async def test_a_stranger_cannot_lock_a_known_account_out(app: Any) -> None:
    fastapi_app, _, _ = app
    async with client_from(fastapi_app, "10.3.0.1") as stranger:
        codes = [(await stranger.post("/api/inbox/login", json={"email": ADMIN_EMAIL, "password": f"x{i}"})
                  ).status_code for i in range(12)]
        assert codes[:10] == [401] * 10 and codes[10:] == [429, 429]
        # One address trying many accounts is held back too.
        others = [(await stranger.post("/api/inbox/login", json={"email": f"u{i}@bj.gov.cn", "password": "x"})
                   ).status_code for i in range(25)]
        assert 429 in others
    async with client_from(fastapi_app, "10.3.0.2") as owner:
        response = await owner.post("/api/inbox/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
        assert response.status_code == 200  # slowed down, never locked out


async def test_agents_change_their_password_and_other_sessions_end(app: Any) -> None:
    fastapi_app, _, admin = app
    await make_agent(admin, "wang@bj.gov.cn", ["hotline"])
    async with client_from(fastapi_app, "10.4.0.1") as desk, client_from(fastapi_app, "10.4.0.2") as phone:
        csrf = await login(desk, "wang@bj.gov.cn", "password-123")
        await login(phone, "wang@bj.gov.cn", "password-123")
        headers = {"X-CSRF-Token": csrf}
        wrong = await desk.post("/api/inbox/me/password", headers=headers,
                                json={"current_password": "not-it", "new_password": "new-password-456"})
        assert wrong.status_code == 422
        assert (await desk.post("/api/inbox/me/password", json={
            "current_password": "password-123", "new_password": "new-password-456"})).status_code == 403  # CSRF
        changed = await desk.post("/api/inbox/me/password", headers=headers,
                                  json={"current_password": "password-123", "new_password": "new-password-456"})
        assert changed.status_code == 204
        assert (await desk.get("/api/inbox/me")).status_code == 200  # this session stays
        assert (await phone.get("/api/inbox/me")).status_code == 401  # the other one ended
    async with client_from(fastapi_app, "10.4.0.3") as fresh:
        old = await fresh.post("/api/inbox/login", json={"email": "wang@bj.gov.cn", "password": "password-123"})
        assert old.status_code == 401
        await login(fresh, "wang@bj.gov.cn", "new-password-456")


async def test_admins_deactivate_agents_and_their_sessions_end(app: Any) -> None:
    fastapi_app, _, admin = app
    agent_id = await make_agent(admin, "zhou@bj.gov.cn", ["hotline"])
    async with client_from(fastapi_app, "10.5.0.1") as agent:
        await login(agent, "zhou@bj.gov.cn", "password-123")
        off = await admin.patch(f"/api/inbox/agents/{agent_id}", headers=ADMIN, json={"active": False})
        assert off.status_code == 200 and off.json()["active"] is False and off.json()["online"] is False
        assert (await agent.get("/api/inbox/me")).status_code == 401
        again = await agent.post("/api/inbox/login", json={"email": "zhou@bj.gov.cn", "password": "password-123"})
        assert again.status_code == 401
        reset = await admin.patch(f"/api/inbox/agents/{agent_id}", headers=ADMIN,
                                  json={"active": True, "password": "reset-password-789"})
        assert reset.status_code == 200 and reset.json()["active"] is True
        await login(agent, "zhou@bj.gov.cn", "reset-password-789")
    admins = [a for a in (await admin.get("/api/inbox/agents", headers=ADMIN)).json() if a["role"] == "admin"]
    last = await admin.patch(f"/api/inbox/agents/{admins[0]['id']}", headers=ADMIN, json={"active": False})
    assert last.status_code == 422 and "last active admin" in last.json()["detail"]
