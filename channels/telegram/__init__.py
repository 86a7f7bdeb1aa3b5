"""Telegram through aiogram 3: `POST /channels/telegram/webhook` (secret-token checked), inline keyboards, callback
queries, /start deep links, photos, voice, documents, locations and the shared contact.
`python -m channels.telegram.set_webhook` registers the webhook (with its secret) with Telegram.
"""

from __future__ import annotations

from dataclasses import dataclass

from channels.telegram.connector import TelegramConnector, TelegramSettings
from channels.telegram.routes import build_router
from channels.telegram.settings import TelegramChannelSettings
from gateway.connectors import BuiltChannel, ChannelParts, ChannelPlugin, PushConnector, WebhookConnector


def connector_of(settings: TelegramChannelSettings) -> TelegramConnector:
    return TelegramConnector(TelegramSettings(
        settings.telegram_bot_token, settings.telegram_webhook_secret, settings.telegram_api_base_url,
    ))


@dataclass(frozen=True)
class TelegramChannel:
    name: str = "telegram"
    settings: type[TelegramChannelSettings] = TelegramChannelSettings

    def build(self, settings: TelegramChannelSettings, parts: ChannelParts) -> BuiltChannel | None:
        if not (settings.telegram_bot_token and settings.telegram_webhook_secret):
            return None
        connector = connector_of(settings)
        _protocols: tuple[WebhookConnector, PushConnector] = (connector, connector)  # mypy holds it to both
        return BuiltChannel(connector, routes=build_router(connector, parts.intake))


CHANNEL: ChannelPlugin = TelegramChannel()

__all__ = ["CHANNEL", "TelegramConnector", "TelegramSettings", "connector_of"]
