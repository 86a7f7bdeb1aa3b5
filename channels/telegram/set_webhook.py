"""`python -m channels.telegram.set_webhook [URL]`: register the gateway's webhook (with its secret) with Telegram.

The URL defaults to PUBLIC_BASE_URL + /channels/telegram/webhook. Needs TELEGRAM_BOT_TOKEN and
TELEGRAM_WEBHOOK_SECRET; TELEGRAM_API_BASE_URL points it at a local Bot API server or a stand-in.
"""

from __future__ import annotations

import asyncio
import sys

from channels.telegram.connector import TelegramConnector, TelegramSettings
from gateway.settings import Settings


async def register(settings: Settings, url: str | None = None) -> str:
    if not settings.telegram_bot_token or not settings.telegram_webhook_secret:
        raise SystemExit("TELEGRAM_BOT_TOKEN and TELEGRAM_WEBHOOK_SECRET must be set")
    target = url or f"{settings.base_url}/channels/telegram/webhook"
    connector = TelegramConnector(TelegramSettings(
        settings.telegram_bot_token, settings.telegram_webhook_secret, settings.telegram_api_base_url
    ))
    try:
        if not await connector.set_webhook(target):
            raise SystemExit("Telegram refused the webhook")
    finally:
        await connector.close()
    return target


def main(argv: list[str]) -> int:
    target = asyncio.run(register(Settings(), argv[0] if argv else None))
    print(f"webhook registered: {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
