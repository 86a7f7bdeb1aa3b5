"""The agent inbox end to end in headless Chromium, against real processes: a citizen on the web chat asks for a
person; an agent logs in, sees the conversation appear without reloading, claims it and replies; the citizen sees
the reply while the bot says nothing; the agent resolves; the citizen gets the survey and answers it.

The gateway here is a variant of the shared stack's (same Rasa): always open (`SERVICE_HOURS=24x7`) and with a
first admin from settings, who creates the agent through the admin API.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from bot import server
from tests.browser.test_webchat import BOT, CITIZEN, MESSAGE, TURN_TIMEOUT_MS, open_chat
from tests.conftest import gateway_env, start_gateway, wait_http

pytestmark = pytest.mark.browser

ADMIN_EMAIL, ADMIN_PASSWORD = "admin@binjiang.gov.cn", "inbox-admin-password"
AGENT_EMAIL, AGENT_PASSWORD = "li.na@binjiang.gov.cn", "li-na-password"


@dataclass
class InboxStack:
    base_url: str


@pytest.fixture(scope="module")
def inbox_stack(stack: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InboxStack]:
    from tests.conftest import free_port

    data_dir = tmp_path_factory.mktemp("inbox")
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = gateway_env(port, stack.rasa_url, data_dir, SERVICE_HOURS="24x7", INBOX_ADMIN_EMAIL=ADMIN_EMAIL,
                      INBOX_ADMIN_PASSWORD=ADMIN_PASSWORD, HANDOFF_WAIT_NOTICE_SECONDS="600")
    gateway = start_gateway(env, data_dir / "gateway.log")
    try:
        wait_http(f"{base_url}/healthz", 60, gateway)  # the handoff needs no KB index: no wait for /readyz
        with httpx.Client(base_url=base_url) as client:
            login = client.post("/api/inbox/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
            assert login.status_code == 200, login.text
            created = client.post(
                "/api/inbox/agents", headers={"X-CSRF-Token": login.json()["csrf_token"]},
                json={"email": AGENT_EMAIL, "password": AGENT_PASSWORD, "name": "李娜", "departments": ["hotline"],
                      "capacity": 3, "language": "zh"},
            )
            assert created.status_code == 201, created.text
        yield InboxStack(base_url)
    except Exception:
        log = data_dir / "gateway.log"
        if log.exists():
            sys.stderr.write(f"---- inbox gateway.log (tail) ----\n{log.read_text(errors='replace')[-4000:]}\n")
        raise
    finally:
        server.stop(gateway)


async def agent_login(browser: Browser, base_url: str) -> Page:
    context = await browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 900})
    page = await context.new_page()
    await page.goto(base_url + "/inbox")  # not logged in: sent to the login page
    await expect(page.get_by_test_id("login-form")).to_be_visible()
    await page.get_by_test_id("login-email").fill(AGENT_EMAIL)
    await page.get_by_test_id("login-password").fill(AGENT_PASSWORD)
    await page.get_by_test_id("login-submit").click()
    await expect(page.get_by_test_id("inbox-live")).to_have_attribute("data-state", "open", timeout=10_000)
    return page


async def test_a_person_takes_over_and_the_citizen_rates_the_service(inbox_stack: InboxStack,
                                                                     browser: Browser) -> None:
    agent = await agent_login(browser, inbox_stack.base_url)
    citizen = await open_chat(browser, inbox_stack.base_url)
    try:
        items = agent.get_by_test_id("inbox-item")
        await expect(items).to_have_count(0)

        # The citizen asks for a person; the bot says it is passing them on, the gateway gives the queue position.
        box = citizen.get_by_test_id("chat-input")
        await box.fill("转人工")
        await box.press("Enter")
        system = citizen.locator('[data-testid=chat-message][data-from="system"]')
        await expect(system.last).to_contain_text("排在第 1 位", timeout=TURN_TIMEOUT_MS)
        bots_before = await citizen.locator(BOT).count()

        # It appears in the agent's list without a reload, waiting.
        item = items.first
        await expect(item).to_have_attribute("data-status", "pending", timeout=10_000)
        await expect(item).to_contain_text("webchat")
        await item.click()
        history = agent.get_by_test_id("history")
        await expect(history.locator('[data-from="citizen"]').first).to_contain_text("转人工", timeout=10_000)
        await expect(history).to_contain_text("转接人工")  # the bot's words, as the citizen saw them

        await agent.get_by_test_id("claim-button").click()
        await expect(agent.get_by_test_id("conversation-status")).to_have_attribute("data-status", "open")
        await expect(system.last).to_contain_text("李娜", timeout=10_000)  # the citizen is told who took over

        # The citizen writes; the agent sees it live; the bot stays quiet.
        await box.fill("我的社保卡丢了，怎么补办？")
        await box.press("Enter")
        await expect(citizen.locator(CITIZEN).last).to_have_attribute("data-status", "delivered")
        await expect(history).to_contain_text("我的社保卡丢了", timeout=10_000)

        await agent.get_by_test_id("reply-input").fill("您好，我是李娜。补办社保卡请带身份证到任一服务网点。")
        await agent.get_by_test_id("reply-send").click()
        from_agent = citizen.locator('[data-testid=chat-message][data-from="agent"]')
        await expect(from_agent.last).to_contain_text("补办社保卡请带身份证", timeout=10_000)
        assert await citizen.locator(BOT).count() == bots_before, "the bot spoke while a person had the conversation"

        # Resolved: the citizen gets the 1–5 survey as buttons and answers it.
        await agent.get_by_test_id("resolve-button").click()
        await expect(agent.get_by_test_id("conversation-status")).to_have_attribute("data-status", "resolved")
        five = citizen.get_by_test_id("quick-reply").filter(has_text="5")
        await expect(five).to_be_visible(timeout=10_000)
        bots_before = await citizen.locator(BOT).count()
        await five.click()
        bots = citizen.locator(BOT)
        await expect(bots.last).to_contain_text("感谢您的评价", timeout=TURN_TIMEOUT_MS)  # the gateway's thanks
        await citizen.wait_for_timeout(1000)
        assert await bots.count() == bots_before + 1, "the survey answer reached the bot (Rasa answered it too)"
        await expect(history.locator('[data-kind="csat"]')).to_contain_text("5/5", timeout=10_000)
        assert await citizen.locator(MESSAGE).count() >= 7
    finally:
        await citizen.context.close()
        await agent.context.close()
