"""The Telegram channel's settings (environment variables, combined into the app's Settings)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings


class TelegramChannelSettings(BaseSettings):
    """The Telegram channel is served when the bot token and the webhook secret are set."""

    telegram_bot_token: str = Field("", description="Telegram bot token; the Telegram channel is served when set.")
    telegram_webhook_secret: str = Field(
        "", description="Secret Telegram sends in X-Telegram-Bot-Api-Secret-Token (required with the bot token)."
    )
    telegram_api_base_url: str = Field(
        "", description="Another Bot API server (a local one or a test stand-in); empty = api.telegram.org."
    )
