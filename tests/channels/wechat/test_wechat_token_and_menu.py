"""The shared access_token (in-process and in the real Redis) and the custom-menu command, against the stand-in."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from channels.wechat.api import AccessTokens
from channels.wechat.connector import WeChatConnector, WeChatSettings, numbered_lines
from channels.wechat.menu import load_menu
from gateway.coordination import InProcessCoordination, RedisCoordination
from gateway.message import Button, OutboundMessage
from tests.channels.wechat.standin import APP_ID, APP_SECRET, TOKEN, StandInWeChat

ROOT = Path(__file__).resolve().parents[3]
MENU = ROOT / "channels" / "wechat" / "menu.yml"
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
async def wechat() -> AsyncIterator[StandInWeChat]:
    server = await StandInWeChat().start()
    yield server
    await server.stop()


@pytest.mark.redis
async def test_workers_share_one_token_through_redis(wechat: StandInWeChat, redis_prefix: str) -> None:
    workers = [RedisCoordination(REDIS_URL, key_prefix=redis_prefix) for _ in range(2)]
    async with httpx.AsyncClient() as http:
        try:
            a, b = (AccessTokens(APP_ID, APP_SECRET, c, http, wechat.url) for c in workers)
            tokens = await asyncio.gather(*(t.get() for t in (a, b) * 5))
            assert len(set(tokens)) == 1 and wechat.token_fetches == 1  # one fetch for every worker
            first = tokens[0]
            await a.invalidate(first)  # worker A was told the token is invalid
            second = await b.get()
            assert second != first and wechat.token_fetches == 2
            await b.invalidate(first)  # a late report about the old token does not drop the new one
            assert await a.get() == second and wechat.token_fetches == 2
        finally:
            for c in workers:
                await c.close()


async def test_the_token_is_refreshed_before_it_expires(wechat: StandInWeChat) -> None:
    wechat.expires_in = 2  # cached for a second: refreshed before WeChat's expiry, never at it
    async with httpx.AsyncClient() as http:
        tokens = AccessTokens(APP_ID, APP_SECRET, InProcessCoordination(), http, wechat.url)
        first = await tokens.get()
        assert await tokens.get() == first
        await asyncio.sleep(1.2)
        assert await tokens.get() != first and wechat.token_fetches == 2


async def test_the_menu_command_publishes_the_config_file(wechat: StandInWeChat) -> None:
    env = {**os.environ, "WECHAT_APP_ID": APP_ID, "WECHAT_APP_SECRET": APP_SECRET, "WECHAT_TOKEN": TOKEN,
           "WECHAT_API_BASE_URL": wechat.url, "REDIS_URL": ""}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "channels.wechat.menu", "publish", str(MENU), cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert "menu published: 3 buttons" in out.decode()
    [menu] = wechat.menus
    assert menu == load_menu(MENU).wire()
    assert menu["button"][2] == {"type": "click", "name": "人工服务", "key": "REQUEST_HUMAN"}
    assert menu["button"][0]["sub_button"][1] == {"type": "view", "name": "办事指南",
                                                  "url": "https://www.binjiang.gov.example/guide"}


@pytest.mark.parametrize("broken, reason", [
    ({"buttons": [{"name": f"b{i}", "key": f"K{i}"} for i in range(4)]}, "at most 3 top-level"),
    ({"buttons": [{"name": "报修", "type": "click"}]}, "needs a key"),
    ({"buttons": [{"name": "官网", "type": "view", "url": "ftp://x"}]}, "http(s) url"),
    ({"buttons": [{"name": "一二三四五六", "key": "K"}]}, "16 bytes"),
    ({"buttons": [{"name": "a", "key": "K"}, {"name": "b", "key": "K"}]}, "unique"),
])
def test_a_broken_menu_is_refused_with_the_reason(tmp_path: Path, broken: dict[str, object], reason: str) -> None:
    path = tmp_path / "menu.yml"
    path.write_text(json.dumps(broken, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(ValueError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        load_menu(path)


def test_rendering_numbers_buttons_links_urls_and_splits_by_bytes() -> None:
    lines = numbered_lines([Button("查询进度", "/check"), Button("官网 <新>", "https://x.example/?a=1&b=2")], "zh")
    link = '2. <a href="https://x.example/?a=1&amp;b=2">官网 &lt;新&gt;</a>'
    assert lines.splitlines() == ["请回复序号：", "1. 查询进度", link]
    connector = WeChatConnector(WeChatSettings(APP_ID, APP_SECRET, TOKEN), InProcessCoordination(),
                                httpx.AsyncClient())
    text = "市民您好。" * 200  # 3,000 bytes of Chinese
    payloads = connector.render("o1", OutboundMessage(text=text, image="https://x.example/a.jpg"), "en")
    contents = [p["body"]["text"]["content"] for p in payloads]
    assert len(contents) == 2 and all(len(c.encode()) <= 2048 for c in contents)
    assert contents[-1].endswith("Image: https://x.example/a.jpg")
    assert connector.capabilities.reply_window_hours == 48 and not connector.capabilities.buttons
