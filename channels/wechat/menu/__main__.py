"""`python -m channels.wechat.menu {publish|show} MENU.yml`: show the menu as WeChat receives it, or publish it with
the account the environment names (the running workers' access_token is reused through Redis)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import httpx

from channels.wechat.api import WeChatApiError
from channels.wechat.connector import WeChatConnector
from channels.wechat.menu import load_menu
from channels.wechat.settings import WeChatChannelSettings
from gateway.coordination import build_coordination
from gateway.settings import GatewaySettings


class MenuSettings(GatewaySettings, WeChatChannelSettings):
    """The account and the coordination, from the environment (and `.env`)."""


async def publish(settings: MenuSettings, path: Path, http: httpx.AsyncClient | None = None) -> dict[str, Any]:
    """Publish the menu in `path` with the account in `settings`; returns the body sent."""
    menu = load_menu(path)
    # The gateway's coordination: with Redis, the running workers' access_token is reused, not replaced.
    coordination = build_coordination(settings.redis_url, settings.redis_key_prefix)
    connector = WeChatConnector.from_settings(settings, coordination, http=http)
    if connector is None:
        raise SystemExit("WECHAT_APP_ID, WECHAT_APP_SECRET and WECHAT_TOKEN must be set")
    try:
        body = menu.wire()
        await connector.api.post("/cgi-bin/menu/create", body)
        return body
    finally:
        await connector.close()
        await coordination.close()


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("publish", "show"):
        print("usage: python -m channels.wechat.menu {publish|show} MENU.yml", file=sys.stderr)
        return 2
    path = Path(argv[1])
    try:
        menu = load_menu(path)
    except ValueError as exc:
        print(f"invalid menu: {exc}", file=sys.stderr)
        return 1
    if argv[0] == "show":
        print(json.dumps(menu.wire(), ensure_ascii=False, indent=2))
        return 0
    try:
        body = asyncio.run(publish(MenuSettings(), path))
    except WeChatApiError as exc:
        print(f"WeChat refused the menu: {exc}", file=sys.stderr)
        return 1
    print(f"menu published: {len(body['button'])} buttons")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
