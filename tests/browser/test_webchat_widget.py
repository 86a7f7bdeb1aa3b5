"""The web chat widget alone, in headless Chromium, against a scripted fake of the gateway's socket.

No gateway runs here: Playwright serves the demo page and the widget's files from the repository and plays the
server side of the wire protocol (`page.route_web_socket`), so each case the protocol promises (echo by client_id,
quick replies, typing, errors, the outbox across a dropped connection, history without duplicates, no HTML from
message text) is checked exactly and fast.
"""

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, Route, WebSocketRoute, expect

pytestmark = pytest.mark.browser

WEBCHAT = Path(__file__).resolve().parents[2] / "channels" / "webchat"
ORIGIN = "http://city.test"
ISSUED_SESSION = "Qm9ndXNTZXNzaW9uSWQx.c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJl"
MESSAGE = "[data-testid=chat-message]"
CITIZEN = '[data-testid=chat-message][data-from="citizen"]'
BOT = '[data-testid=chat-message][data-from="bot"]'


def msg(sender: str, text: str | None, number: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"m{number}",
        "from": sender,
        "text": text,
        "buttons": extra.get("buttons"),
        "image": extra.get("image"),
        "client_id": extra.get("client_id"),
        "created_at": f"2026-11-23T09:{number % 60:02d}:00+00:00",
    }


class FakeGateway:
    """Plays the server end of /channels/webchat/ws: records what the widget sends, replies as told."""

    def __init__(self) -> None:
        self.connections: list[WebSocketRoute] = []
        self.urls: list[str] = []
        self.frames: list[dict[str, Any]] = []
        self.history: list[dict[str, Any]] = []
        self.send_history = True
        self.hellos: list[str | None] = []

    def handle(self, ws: WebSocketRoute) -> None:
        self.connections.append(ws)
        self.urls.append(ws.url)

        def on_message(raw: str | bytes) -> None:
            frame = json.loads(raw)
            self.frames.append(frame)
            if frame.get("type") == "hello":  # the server's answer: the session (kept, or a new one), then history
                self.hellos.append(frame.get("session"))
                ws.send(json.dumps({"type": "session", "session": frame.get("session") or ISSUED_SESSION}))
                if self.send_history:
                    ws.send(json.dumps({"type": "history", "messages": self.history}))

        ws.on_message(on_message)

    @property
    def live(self) -> WebSocketRoute:
        return self.connections[-1]

    def push(self, frame: dict[str, Any]) -> None:
        self.live.send(json.dumps(frame))

    def message(self, message: dict[str, Any]) -> None:
        self.history.append(message)
        self.push({"type": "message", "message": message})

    def messages_sent(self) -> list[dict[str, Any]]:
        return [f for f in self.frames if f.get("type") == "message"]


async def serve_repo_file(route: Route) -> None:
    path = route.request.url.removeprefix(ORIGIN).split("?")[0]
    files = {
        "/": (WEBCHAT / "templates" / "index.html", "text/html; charset=utf-8"),
        "/webchat/widget.js": (WEBCHAT / "static" / "widget.js", "text/javascript; charset=utf-8"),
        "/webchat/widget.css": (WEBCHAT / "static" / "widget.css", "text/css; charset=utf-8"),
    }
    if path not in files:
        await route.fulfill(status=404, body="not found")
        return
    file, content_type = files[path]
    await route.fulfill(status=200, body=file.read_bytes(), headers={"content-type": content_type})


@pytest_asyncio.fixture
async def chat(browser: Browser) -> AsyncIterator[tuple[Page, FakeGateway]]:
    context = await browser.new_context(locale="en-US", viewport={"width": 390, "height": 844})
    gateway = FakeGateway()
    await context.route(f"{ORIGIN}/**", serve_repo_file)
    await context.route_web_socket(re.compile(r"/channels/webchat/ws$"), gateway.handle)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(f"{ORIGIN}/")
    await expect(page.get_by_test_id("chat-panel")).to_be_visible()
    await expect(page.get_by_test_id("chat-status")).to_have_attribute("data-state", "open")
    try:
        yield page, gateway
    finally:
        await context.close()
    assert not errors, f"the widget threw: {errors}"


async def eventually(read: Callable[[], Any], expected: Any, timeout: float = 10.0) -> None:
    """Waits until read() == expected; the fake gateway's frames arrive while this loop sleeps."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (value := read()) != expected:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"expected {expected!r}, still {value!r} after {timeout} s")
        await asyncio.sleep(0.02)


async def type_and_send(page: Page, text: str) -> None:
    box = page.get_by_test_id("chat-input")
    await box.fill(text)
    await box.press("Enter")


async def test_socket_url_comes_from_the_script_src_and_the_server_issues_the_session(
    chat: tuple[Page, FakeGateway],
) -> None:
    page, gateway = chat
    # No session in the URL (access logs); the first hello has none, the server issues one, the widget keeps it.
    assert gateway.urls[0] == "ws://city.test/channels/webchat/ws"
    await eventually(lambda: gateway.hellos, [None])
    await page.wait_for_function(f"localStorage.getItem('bjchat.session') === {json.dumps(ISSUED_SESSION)}")
    await page.reload()
    await expect(page.get_by_test_id("chat-status")).to_have_attribute("data-state", "open")
    assert gateway.urls[-1] == gateway.urls[0]
    await eventually(lambda: gateway.hellos, [None, ISSUED_SESSION])


async def test_sent_message_shows_at_once_and_the_echo_marks_it_delivered(chat: tuple[Page, FakeGateway]) -> None:
    page, gateway = chat
    box = page.get_by_test_id("chat-input")
    await box.fill("first line")
    await box.press("Shift+Enter")  # a new line, not a send
    await box.type("second line")
    assert gateway.messages_sent() == []
    await page.get_by_test_id("chat-send").click()

    mine = page.locator(CITIZEN)
    await expect(mine).to_have_count(1)
    await expect(mine).to_have_attribute("data-status", "pending")
    await expect(box).to_have_value("")
    await eventually(lambda: len(gateway.messages_sent()), 1)
    frame = gateway.messages_sent()[0]
    assert frame["text"] == "first line\nsecond line" and "payload" not in frame and frame["client_id"]

    gateway.message(msg("citizen", frame["text"], 1, client_id=frame["client_id"]))
    await expect(mine).to_have_attribute("data-status", "delivered")
    await expect(mine).to_have_count(1)
    await expect(mine).to_have_attribute("data-id", "m1")
    assert await mine.inner_text() == "first line\nsecond line"
    gateway.message(msg("citizen", frame["text"], 1, client_id=frame["client_id"]))  # a repeat is ignored
    gateway.message(msg("bot", "Hello", 2))
    await expect(page.locator(MESSAGE)).to_have_count(2)


async def test_quick_replies_belong_to_the_last_bot_message_and_send_their_payload(
    chat: tuple[Page, FakeGateway],
) -> None:
    page, gateway = chat
    quick = page.get_by_test_id("quick-reply")
    buttons = [{"title": "Residence permit", "payload": "/ask_question"}, {"title": "A person", "payload": "/human"}]
    gateway.message(msg("bot", "Pick one", 1, buttons=buttons))
    await expect(quick).to_have_text(["Residence permit", "A person"])
    gateway.message(msg("bot", "Or just type", 2))
    await expect(quick).to_have_count(0)
    gateway.message(msg("bot", "Pick again", 3, buttons=buttons))
    await expect(quick).to_have_count(2)

    await quick.nth(1).click()
    await expect(quick).to_have_count(0)
    await expect(page.locator(CITIZEN)).to_have_text(["A person"])
    await eventually(lambda: len(gateway.messages_sent()), 1)
    frame = gateway.messages_sent()[0]
    assert frame["text"] == "A person" and frame["payload"] == "/human"

    gateway.message(msg("bot", "Pick again", 4, buttons=buttons))
    await expect(quick).to_have_count(2)
    await type_and_send(page, "never mind")  # typing an answer also dismisses them
    await expect(quick).to_have_count(0)


async def test_typing_dots_follow_the_server_and_hide_on_a_bot_message(chat: tuple[Page, FakeGateway]) -> None:
    page, gateway = chat
    dots = page.get_by_test_id("chat-typing")
    await expect(dots).to_be_hidden()
    gateway.push({"type": "typing", "on": True})
    await expect(dots).to_be_visible()
    gateway.message(msg("bot", "Here you are", 1))
    await expect(dots).to_be_hidden()
    gateway.push({"type": "typing", "on": True})
    await expect(dots).to_be_visible()
    gateway.push({"type": "typing", "on": False})
    await expect(dots).to_be_hidden()


async def test_message_text_is_shown_as_text_and_only_http_urls_become_links(chat: tuple[Page, FakeGateway]) -> None:
    page, gateway = chat
    text = (
        '<img src=x onerror="window.__pwned = 1"><b>bold?</b>\n'
        "Guide: https://example.org/permit?lang=en. Not a link: javascript:alert(1)\n"
        "见 https://example.org/指南。"
    )
    gateway.message(msg("bot", text, 1, image="javascript:alert(2)"))
    bot = page.locator(BOT)
    await expect(bot).to_have_count(1)
    assert await bot.inner_text() == text
    assert await bot.locator("img, b, script").count() == 0
    links = bot.locator("a")
    await expect(links).to_have_count(2)
    assert await links.nth(0).get_attribute("href") == "https://example.org/permit?lang=en"
    assert await links.nth(0).get_attribute("rel") == "noopener noreferrer nofollow"
    assert await links.nth(1).inner_text() == "https://example.org/指南"
    assert await page.evaluate("window.__pwned") is None

    gateway.message(msg("bot", None, 2, image="/media/map.png"))
    picture = page.locator(BOT).nth(1).locator("img")
    await expect(picture).to_have_attribute("src", "http://city.test/media/map.png")


async def test_a_refused_message_is_explained_and_not_resent(chat: tuple[Page, FakeGateway]) -> None:
    page, gateway = chat
    await type_and_send(page, "x" * 50)
    await eventually(lambda: len(gateway.messages_sent()), 1)
    client_id = gateway.messages_sent()[0]["client_id"]
    gateway.push({"type": "error", "reason": "too_long", "client_id": client_id})
    await expect(page.get_by_test_id("chat-error")).to_have_text(re.compile("too long"))
    await expect(page.locator(CITIZEN)).to_have_attribute("data-status", "failed")
    outbox = await page.evaluate("Object.keys(sessionStorage).filter((key) => key.startsWith('bjchat.outbox.'))")
    assert outbox == [], "the outbox must let a refused message go"

    # The gateway's reasons may be English sentences; the citizen still gets a polite line in the UI language.
    gateway.push({"type": "error", "reason": "too many messages; please wait a moment"})
    await expect(page.get_by_test_id("chat-error")).to_have_text(re.compile("a little fast"))


async def test_nothing_typed_offline_is_lost_or_sent_twice(chat: tuple[Page, FakeGateway]) -> None:
    page, gateway = chat
    gateway.send_history = True
    await type_and_send(page, "sent, then the line dropped")
    await eventually(lambda: len(gateway.messages_sent()), 1)
    unechoed = gateway.messages_sent()[0]

    await gateway.live.close()
    await expect(page.get_by_test_id("chat-status")).to_have_attribute("data-state", "reconnecting")
    await expect(page.get_by_test_id("chat-status")).to_be_visible()
    # Offline: keep the next reconnect from answering (history withheld = nothing is flushed yet).
    gateway.send_history = False
    await eventually(lambda: len(gateway.connections), 2)
    await type_and_send(page, "typed while offline")
    await page.wait_for_timeout(300)
    assert len(gateway.messages_sent()) == 1, "the outbox must wait for the history before sending"

    # The server had stored the first message before the drop; its history says so.
    gateway.history = [msg("citizen", unechoed["text"], 1, client_id=unechoed["client_id"])]
    gateway.send_history = True
    await gateway.live.close()
    await eventually(lambda: len(gateway.connections), 3)
    await eventually(lambda: len(gateway.messages_sent()), 2)
    resent = gateway.messages_sent()[1]
    assert resent["text"] == "typed while offline"

    mine = page.locator(CITIZEN)
    await expect(mine).to_have_text(["sent, then the line dropped", "typed while offline"])
    await expect(mine.first).to_have_attribute("data-status", "delivered")
    await expect(mine.last).to_have_attribute("data-status", "pending")

    # Dropped again before the echo: the same client_id goes again, once, and the echo settles it.
    await gateway.live.close()
    await eventually(lambda: len(gateway.messages_sent()), 3)
    assert gateway.messages_sent()[2]["client_id"] == resent["client_id"]
    gateway.message(msg("citizen", resent["text"], 2, client_id=resent["client_id"]))
    await expect(mine.last).to_have_attribute("data-status", "delivered")
    await expect(mine).to_have_count(2)
    await expect(page.get_by_test_id("chat-status")).to_have_attribute("data-state", "open")
    await expect(page.get_by_test_id("chat-status")).to_be_hidden()


async def test_history_replaces_what_is_shown_so_reconnects_do_not_duplicate(
    chat: tuple[Page, FakeGateway],
) -> None:
    page, gateway = chat
    gateway.message(msg("citizen", "hello", 1, client_id="c1"))
    gateway.message(msg("bot", "Hi! How can I help?", 2))
    await expect(page.locator(MESSAGE)).to_have_count(2)
    await gateway.live.close()
    await eventually(lambda: len(gateway.connections), 2)
    await expect(page.get_by_test_id("chat-status")).to_have_attribute("data-state", "open")
    await expect(page.locator(MESSAGE)).to_have_text(["hello", "Hi! How can I help?"])
    await page.reload()
    await expect(page.locator(MESSAGE)).to_have_text(["hello", "Hi! How can I help?"])


async def test_ui_language_toggle_and_page_api(chat: tuple[Page, FakeGateway]) -> None:
    page, gateway = chat
    send = page.get_by_test_id("chat-send")
    await expect(send).to_have_text("Send")  # the browser says en-US
    await page.get_by_role("button", name="切换到中文").click()
    await expect(send).to_have_text("发送")
    await expect(page.get_by_test_id("chat-input")).to_have_attribute("placeholder", re.compile("请输入"))
    await page.reload()
    await expect(send).to_have_text("发送")

    await page.evaluate("window.BinjiangChat.close()")
    await expect(page.get_by_test_id("chat-panel")).to_be_hidden()
    await expect(page.get_by_test_id("chat-launcher")).to_have_attribute("aria-expanded", "false")
    await page.evaluate("window.BinjiangChat.open()")
    await expect(page.get_by_test_id("chat-panel")).to_be_visible()
    await expect(page.get_by_test_id("chat-input")).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(page.get_by_test_id("chat-panel")).to_be_hidden()
    await expect(page.get_by_test_id("chat-launcher")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.get_by_test_id("chat-panel")).to_be_visible()

    await page.evaluate("window.BinjiangChat.send('from the page')")
    await eventually(lambda: [f["text"] for f in gateway.messages_sent()], ["from the page"])
