"""`python -m channels.telegram.set_webhook [URL]`: register the gateway's webhook (with its secret) with Telegram.

The URL defaults to PUBLIC_BASE_URL + /channels/telegram/webhook. Needs TELEGRAM_BOT_TOKEN and
TELEGRAM_WEBHOOK_SECRET; TELEGRAM_API_BASE_URL points it at a local Bot API server or a stand-in.
"""

from __future__ import annotations

import asyncio
import sys

from channels.telegram import connector_of
from channels.telegram.settings import TelegramChannelSettings
from gateway.settings import GatewaySettings


class WebhookSettings(GatewaySettings, TelegramChannelSettings):
    """The gateway's public address and the bot's settings, from the environment (and `.env`)."""


async def register(settings: WebhookSettings, url: str | None = None) -> str:
    if not settings.telegram_bot_token or not settings.telegram_webhook_secret:
        raise SystemExit("TELEGRAM_BOT_TOKEN and TELEGRAM_WEBHOOK_SECRET must be set")
    target = url or f"{settings.base_url}/channels/telegram/webhook"
    connector = connector_of(settings)
    try:
        if not await connector.set_webhook(target):
            raise SystemExit("Telegram refused the webhook")
    finally:
        await connector.close()
    return target


def main(argv: list[str]) -> int:
    target = asyncio.run(register(WebhookSettings(), argv[0] if argv else None))
    print(f"webhook registered: {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
