"""The web chat end to end in headless Chromium: the demo page at `/`, the widget, the gateway's socket and a
real Rasa behind it (the `stack` fixture). A citizen writes in Chinese and in English, gets answers in the
language they wrote, reloads, and finds the whole conversation still there; quick replies send their payload.
"""

import json
import re
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

pytestmark = pytest.mark.browser

CJK = re.compile(r"[\u3400-\u9fff]")
LATIN = re.compile(r"[A-Za-z]")
MESSAGE = "[data-testid=chat-message]"
BOT = '[data-testid=chat-message][data-from="bot"]'
CITIZEN = '[data-testid=chat-message][data-from="citizen"]'
TURN_TIMEOUT_MS = 30_000  # a cold Rasa's first turn can take a few seconds


async def open_chat(browser: Browser, base_url: str, locale: str = "zh-CN") -> Page:
    context = await browser.new_context(locale=locale, viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    await page.goto(base_url.rstrip("/") + "/")
    await expect(page.get_by_test_id("chat-panel")).to_be_visible()
    # "open" only after the socket is up; history arrives right after, so give the page that moment too.
    await expect(page.get_by_test_id("chat-status")).to_have_attribute("data-state", "open", timeout=10_000)
    return page


async def citizen_turn(page: Page, text: str) -> list[str]:
    """Types `text`, presses Enter, waits for the bot's answer; returns the texts of the new bot messages."""
    bots = page.locator(BOT)
    before = await bots.count()
    box = page.get_by_test_id("chat-input")
    await box.fill(text)
    await box.press("Enter")
    mine = page.locator(CITIZEN).last
    await expect(mine).to_have_text(text)
    await expect(mine).to_have_attribute("data-status", "delivered", timeout=TURN_TIMEOUT_MS)
    await page.wait_for_function(
        "([selector, count]) => document.querySelectorAll(selector).length > count",
        arg=[BOT, before],
        timeout=TURN_TIMEOUT_MS,
    )
    await expect(page.get_by_test_id("chat-typing")).to_be_hidden(timeout=TURN_TIMEOUT_MS)
    return (await bots.all_inner_texts())[before:]


async def transcript(page: Page) -> list[tuple[str | None, str]]:
    rows = page.locator(MESSAGE)
    return [
        (await rows.nth(i).get_attribute("data-from"), (await rows.nth(i).inner_text()).strip())
        for i in range(await rows.count())
    ]


async def watch_typing_indicator(page: Page) -> None:
    """Records in window.__bjTypingShown whether the dots were ever shown (a fast bot shows them briefly)."""
    await page.evaluate(
        """() => {
          window.__bjTypingShown = false;
          const dots = document.querySelector('[data-testid=chat-typing]');
          new MutationObserver((records) => {
            if (records.some((r) => r.attributeName === 'hidden' && r.oldValue !== null)) window.__bjTypingShown = true;
          }).observe(dots, {attributes: true, attributeOldValue: true, attributeFilter: ['hidden']});
        }"""
    )


async def test_answers_in_the_citizens_language_and_history_survives_reload(stack: Any, browser: Browser) -> None:
    page = await open_chat(browser, stack.base_url)
    try:
        await watch_typing_indicator(page)

        zh_answer = "\n".join(await citizen_turn(page, "你好"))
        assert len(CJK.findall(zh_answer)) >= 2, f"expected a Chinese answer to 你好, got {zh_answer!r}"
        assert await page.evaluate("window.__bjTypingShown"), "the typing indicator never showed during the turn"

        question = "How do I apply for a residence permit?"
        en_answer = "\n".join(await citizen_turn(page, question))
        latin, cjk = len(LATIN.findall(en_answer)), len(CJK.findall(en_answer))
        assert latin >= 20 and cjk * 5 <= latin, f"expected an English answer, got {en_answer!r}"

        before = await transcript(page)
        await page.reload()
        await expect(page.get_by_test_id("chat-panel")).to_be_visible()
        await expect(page.locator(MESSAGE)).to_have_count(len(before), timeout=10_000)
        after = await transcript(page)
        assert after == before, "the conversation after a reload differs from before it"
        citizen_lines = [text for sender, text in after if sender == "citizen"]
        assert citizen_lines.count("你好") == 1 and citizen_lines.count(question) == 1
        assert sum(1 for sender, _ in after if sender == "bot") >= 2
    finally:
        await page.context.close()


async def test_pressing_a_quick_reply_sends_its_payload(stack: Any, browser: Browser) -> None:
    page = await open_chat(browser, stack.base_url)
    sent: list[dict[str, Any]] = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(json.loads(payload))))
    await page.reload()  # so the socket opened after the listener is in place
    await expect(page.get_by_test_id("chat-status")).to_have_attribute("data-state", "open", timeout=10_000)
    try:
        quick = page.get_by_test_id("quick-reply")
        # A vague question makes the bot offer its closest articles as buttons; asking for a person comes last
        # because it hands the conversation to the agents and the bot stops answering.
        for text in ("你好", "办那个东西要什么", "请问那个证怎么弄", "我要找人工"):
            await citizen_turn(page, text)
            if await quick.count():
                break
        if not await quick.count():
            pytest.skip("the bot offered no quick replies to a greeting, vague questions or a request for a person")

        first = quick.first
        title = (await first.inner_text()).strip()
        payload = await first.get_attribute("data-payload")
        citizens_before = await page.locator(CITIZEN).count()
        await first.click()

        mine = page.locator(CITIZEN)
        await expect(mine).to_have_count(citizens_before + 1)
        await expect(mine.last).to_have_text(title)
        await expect(mine.last).to_have_attribute("data-status", "delivered", timeout=TURN_TIMEOUT_MS)
        frames = [f for f in sent if f.get("type") == "message" and f.get("text") == title]
        assert frames and frames[-1].get("payload") == payload and frames[-1].get("client_id")
    finally:
        await page.context.close()
