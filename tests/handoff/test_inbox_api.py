"""The inbox API over HTTP (create_app's routes, real database): login sessions, CSRF, roles, the first admin, agent
creation, the list and actions, and that work orders and KB editing accept the new roles while the admin token keeps
working for API clients."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from gateway.auth import SESSION_COOKIE
from gateway.message import InboundMessage
from tests.handoff.support import ADMIN_EMAIL, ADMIN_PASSWORD, ADMIN_TOKEN, inbox_app, inbox_settings, login


@pytest.fixture
async def app(tmp_path: Path):  # type: ignore[no-untyped-def]
    async with inbox_app(inbox_settings(tmp_path)) as parts:
        yield parts


async def make_agent(client: httpx.AsyncClient, email: str, role: str = "agent") -> None:
    response = await client.post("/api/inbox/agents", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                                 json={"email": email, "password": "password-123", "name": email.split("@")[0],
                                       "role": role, "departments": ["hotline"]})
    assert response.status_code == 201, response.text


async def test_login_session_cookie_and_csrf(app) -> None:  # type: ignore[no-untyped-def]
    _, services, client = app
    assert (await client.get("/api/inbox/conversations")).status_code in (401, 403)
    bad = await client.post("/api/inbox/login", json={"email": ADMIN_EMAIL, "password": "nope"})
    assert bad.status_code == 401
    form = await client.post("/api/inbox/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert form.status_code in (415, 422)  # only JSON: a cross-site form cannot log anyone in
    response = await client.post("/api/inbox/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert response.status_code == 200
    cookie = response.headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
    csrf = response.json()["csrf_token"]
    assert (await client.get("/api/inbox/conversations")).status_code == 200

    body = {"email": "new@bj.gov.cn", "password": "password-123", "name": "New", "departments": ["hotline"]}
    assert (await client.post("/api/inbox/agents", json=body)).status_code == 403  # no CSRF token
    assert (await client.post("/api/inbox/agents", json=body, headers={"X-CSRF-Token": "forged"})).status_code == 403
    created = await client.post("/api/inbox/agents", json=body, headers={"X-CSRF-Token": csrf})
    assert created.status_code == 201 and created.json()["role"] == "agent"
    assert (await client.post("/api/inbox/agents", json=body, headers={"X-CSRF-Token": csrf})).status_code == 409

    assert (await client.post("/api/inbox/logout", headers={"X-CSRF-Token": csrf})).status_code == 204
    client.cookies.clear()
    assert (await client.get("/api/inbox/conversations")).status_code in (401, 403)


async def test_roles(app) -> None:  # type: ignore[no-untyped-def]
    _, services, client = app
    await make_agent(client, "agent@bj.gov.cn")
    await make_agent(client, "editor@bj.gov.cn", role="content_editor")
    await make_agent(client, "super@bj.gov.cn", role="supervisor")

    csrf = await login(client, "agent@bj.gov.cn", "password-123")
    assert (await client.get("/api/inbox/conversations")).status_code == 200
    assert (await client.get("/api/inbox/stats")).status_code == 403  # supervisors only
    assert (await client.post("/api/inbox/agents", json={}, headers={"X-CSRF-Token": csrf})).status_code in (403, 422)
    assert (await client.get("/api/work-orders")).status_code in (200, 503)  # agents use work orders
    assert (await client.get("/api/kb/articles")).status_code == 403  # but do not edit the KB
    client.cookies.clear()

    await login(client, "editor@bj.gov.cn", "password-123")
    assert (await client.get("/api/inbox/conversations")).status_code == 403
    assert (await client.get("/api/work-orders")).status_code == 403
    assert (await client.get("/api/kb/articles")).status_code not in (401, 403)  # editors edit the KB
    client.cookies.clear()

    await login(client, "super@bj.gov.cn", "password-123")
    stats = await client.get("/api/inbox/stats")
    assert stats.status_code == 200 and stats.json()["waiting"] == 0
    client.cookies.clear()

    # API clients keep using the operator's token as an admin.
    assert (await client.get("/api/inbox/stats", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})).status_code == 200
    assert (await client.get("/api/inbox/stats", headers={"Authorization": "Bearer wrong"})).status_code == 403


async def test_list_claim_reply_resolve_over_http(app) -> None:  # type: ignore[no-untyped-def]
    _, services, client = app
    await make_agent(client, "li@bj.gov.cn")
    services.bot.slots = {"handoff_requested": True}
    outcome = await services.pipeline.handle(InboundMessage(
        channel="webchat", channel_account="default", external_user_id="web-citizen-1", external_message_id="w1",
        text="转人工"))
    conversation_id = outcome.conversation_id
    csrf = await login(client, "li@bj.gov.cn", "password-123")
    headers = {"X-CSRF-Token": csrf}
    listed = (await client.get("/api/inbox/conversations", params={"status": "pending"})).json()["conversations"]
    assert [c["id"] for c in listed] == [conversation_id] and listed[0]["channel"] == "webchat"
    assert (await client.get("/api/inbox/conversations", params={"status": "nonsense"})).status_code == 422
    assert (await client.post(f"/api/inbox/conversations/{conversation_id}/claim", headers=headers)).status_code == 200
    again = await client.post(f"/api/inbox/conversations/{conversation_id}/claim", headers=headers)
    assert again.status_code == 409
    sent = await client.post(f"/api/inbox/conversations/{conversation_id}/reply", headers=headers,
                             json={"text": "您好，请讲"})
    assert sent.status_code == 200
    assert (await client.post(f"/api/inbox/conversations/{conversation_id}/reply", headers=headers,
                              json={"text": "  "})).status_code == 422
    assert (await client.post(f"/api/inbox/conversations/{conversation_id}/notes", headers=headers,
                              json={"text": "回访时注意"})).status_code == 200
    # The agent files a work order from the conversation (the work-order API takes the session and its CSRF token).
    order = {"category": "report", "description": "人民路56号路灯不亮", "contact_id": "", "channel": "webchat",
             "conversation_id": conversation_id}
    detail = (await client.get(f"/api/inbox/conversations/{conversation_id}")).json()
    order["contact_id"] = detail["contact"]["id"]
    assert (await client.post("/api/work-orders", json=order)).status_code == 403  # no CSRF token
    filed = await client.post("/api/work-orders", json=order, headers=headers)
    assert filed.status_code == 201, filed.text
    detail = (await client.get(f"/api/inbox/conversations/{conversation_id}")).json()
    assert [w["number"] for w in detail["contact"]["work_orders"]] == [filed.json()["order"]["number"]]
    froms = [h.get("from") for h in detail["history"] if h["kind"] == "message"]
    assert froms[:2] == ["citizen", "bot"] and "agent" in froms
    assert detail["contact"]["identities"] == [{"channel": "webchat", "account": "default", "user": "web-citizen-1"}]
    resolved = await client.post(f"/api/inbox/conversations/{conversation_id}/resolve", headers=headers)
    assert resolved.status_code == 200
    assert (await client.get("/api/inbox/conversations/nope")).status_code == 404
    me = (await client.get("/api/inbox/me")).json()
    assert me["agent"]["online"] is True
    assert (await client.patch("/api/inbox/me", json={"language": "en"}, headers=headers)).json()["language"] == "en"


async def test_pages(app) -> None:  # type: ignore[no-untyped-def]
    _, services, client = app
    anonymous = await client.get("/inbox")
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/inbox/login"
    assert "login-form" in (await client.get("/inbox/login")).text
    await login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    page = await client.get("/inbox")
    assert page.status_code == 200 and 'name="csrf-token"' in page.text and "Asia/Shanghai" in page.text
    assert (await client.get("/inbox/static/inbox.js")).status_code == 200
    assert (await client.get("/inbox/static/secret.py")).status_code == 404
    assert client.cookies.get(SESSION_COOKIE)


async def test_rest_channel_reports_the_status_after_each_turn(app) -> None:  # type: ignore[no-untyped-def]
    _, services, client = app
    first = await client.post("/channels/rest/webhook", json={"sender": "rest-1", "message": "你好"})
    assert [item["meta"]["conversation_status"] for item in first.json()] == ["bot"]
    services.bot.slots = {"handoff_requested": True}
    second = (await client.post("/channels/rest/webhook", json={"sender": "rest-1", "message": "转人工"})).json()
    assert [item["meta"]["conversation_status"] for item in second] == ["pending", "pending"]
    assert "排在第 1 位" in second[-1]["text"]
    assert (await client.post("/channels/rest/webhook", json={"sender": "rest-1", "message": "在吗"})).json() == []


async def test_password_guessing_is_slowed_down(app) -> None:  # type: ignore[no-untyped-def]
    _, _, client = app
    codes = [(await client.post("/api/inbox/login", json={"email": ADMIN_EMAIL, "password": f"guess-{i}"})).status_code
             for i in range(11)]
    assert codes[:10] == [401] * 10 and codes[10] == 429


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


async def test_an_agent_sends_a_file_and_the_link_is_signed(app) -> None:  # type: ignore[no-untyped-def]
    _, services, client = app
    await make_agent(client, "zhao@bj.gov.cn")
    services.bot.slots = {"handoff_requested": True}
    outcome = await services.pipeline.handle(InboundMessage(
        channel="webchat", channel_account="default", external_user_id="web-citizen-9", external_message_id="w9",
        text="转人工"))
    conversation_id = outcome.conversation_id
    csrf = await login(client, "zhao@bj.gov.cn", "password-123")
    url = f"/api/inbox/conversations/{conversation_id}/attachments"
    assert (await client.post(url, files={"file": ("map.png", PNG, "image/png")})).status_code == 403  # no CSRF
    refused = await client.post(url, headers={"X-CSRF-Token": csrf},
                                files={"file": ("tool.exe", b"MZ\x90\x00", "application/x-msdownload")})
    assert refused.status_code == 422 and "not accepted" in refused.json()["detail"]
    sent = await client.post(url, headers={"X-CSRF-Token": csrf}, data={"caption": "办理地点见附图"},
                             files={"file": ("map.png", PNG, "image/png")})
    assert sent.status_code == 200, sent.text
    name = sent.json()["ref"].removeprefix("media/")
    detail = (await client.get(f"/api/inbox/conversations/{conversation_id}")).json()
    last = [h for h in detail["history"] if h["kind"] == "message"][-1]
    assert last["from"] == "agent" and last["text"] == "办理地点见附图"
    link = httpx.URL(last["image"])
    # The citizen's channel fetches the signed link; a tampered or expired one is refused; staff use the inbox API.
    public = await client.get(link.raw_path.decode())
    assert public.status_code == 200 and public.content == PNG and public.headers["content-type"] == "image/png"
    tampered = link.copy_set_param("sig", "0" * 40)
    assert (await client.get(tampered.raw_path.decode())).status_code == 403
    expired = link.copy_set_param("exp", "1000")
    assert (await client.get(expired.raw_path.decode())).status_code == 403
    assert (await client.get(f"/api/inbox/media/{name}")).content == PNG
    client.cookies.clear()
    assert (await client.get(f"/api/inbox/media/{name}")).status_code == 401
