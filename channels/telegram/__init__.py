"""Telegram through aiogram 3: `POST /channels/telegram/webhook` (secret-token checked), inline keyboards, callback
queries, /start deep links, photos, voice, documents, locations and the shared contact.

`python -m channels.telegram.set_webhook` registers the webhook (with its secret) with Telegram.
"""

from channels.telegram.connector import TelegramConnector, TelegramSettings

__all__ = ["TelegramConnector", "TelegramSettings"]
