"""The dashboard in headless Chromium, against a gateway process: a supervisor sees the period's conversations by
channel (chart and table), the containment rate, and the export links; an agent is kept out."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from bot import server
from tests.channels.sms.test_sms_stack import wait_healthy
from tests.channels.support import StandInRasa
from tests.conftest import free_port, gateway_env, start_gateway

pytestmark = pytest.mark.browser
ADMIN_EMAIL, ADMIN_PASSWORD = "chief@binjiang.gov.cn", "dashboard-admin-password"
AGENT_EMAIL, AGENT_PASSWORD = "wang.fang@binjiang.gov.cn", "wang-fang-password"


async def login(browser: Browser, base: str, email: str, password: str) -> Page:
    context = await browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 900})
    page = await context.new_page()
    await page.goto(base + "/inbox/login")
    await page.get_by_test_id("login-email").fill(email)
    await page.get_by_test_id("login-password").fill(password)
    await page.get_by_test_id("login-submit").click()
    await page.wait_for_url("**/inbox")
    return page


async def test_a_supervisor_reads_the_figures_and_an_agent_cannot(browser: Browser, tmp_path: Path) -> None:
    rasa = await StandInRasa().start()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = gateway_env(port, rasa.url, tmp_path, INBOX_ADMIN_EMAIL=ADMIN_EMAIL, INBOX_ADMIN_PASSWORD=ADMIN_PASSWORD,
                      RASA_TOKEN="")
    gateway = start_gateway(env, tmp_path / "gateway.log")
    try:
        await wait_healthy(base, gateway)
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            for sender in ("citizen-a", "citizen-b"):
                turn = await client.post("/channels/rest/webhook", json={"sender": sender, "message": "你好"})
                assert turn.status_code == 200, turn.text
            session = await client.post("/api/inbox/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
            created = await client.post(
                "/api/inbox/agents", headers={"X-CSRF-Token": session.json()["csrf_token"]},
                json={"email": AGENT_EMAIL, "password": AGENT_PASSWORD, "name": "王芳", "departments": ["hotline"],
                      "capacity": 3, "language": "zh"},
            )
            assert created.status_code == 201, created.text

        chief = await login(browser, base, ADMIN_EMAIL, ADMIN_PASSWORD)
        try:
            await chief.goto(base + "/dashboard")
            await expect(chief.locator("body")).to_have_attribute("data-loaded", "true", timeout=15_000)
            tile = chief.get_by_test_id("tile-conversations")
            await expect(tile).to_contain_text("2")
            await expect(tile).to_contain_text("会话")
            await expect(chief.get_by_test_id("tile-containment_rate")).to_contain_text("100.0%")
            table = chief.get_by_test_id("channel-table")
            await expect(table).to_contain_text("rest")
            await expect(chief.locator("svg.chart[role=img]").first).to_be_visible()
            href = await chief.get_by_test_id("export-csv").get_attribute("href")
            assert href and href.startswith("/api/reports/summary.csv?from=")
            # Another period, chosen with the keyboard: nothing in it.
            await chief.locator("#from").fill("2025-01-01")
            await chief.locator("#to").fill("2025-01-31")
            await chief.locator("#to").press("Enter")
            await expect(tile).to_contain_text("0")
        finally:
            await chief.context.close()

        agent = await login(browser, base, AGENT_EMAIL, AGENT_PASSWORD)
        try:
            response = await agent.goto(base + "/dashboard")
            assert response is not None and response.status == 403
        finally:
            await agent.context.close()
    except Exception:
        log = tmp_path / "gateway.log"
        if log.exists():
            sys.stderr.write(f"---- dashboard gateway.log (tail) ----\n{log.read_text(errors='replace')[-4000:]}\n")
        raise
    finally:
        server.stop(gateway)
        await rasa.stop()
