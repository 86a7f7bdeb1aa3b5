"""The REST channel: trusted integrations and tests post a message and get the bot's replies in the response.

`POST /channels/rest/webhook` with `{"sender", "message", "metadata"?}` answers Rasa-REST style, each item with
`meta` (intent, confidence, kb_article_ids, work_order_id, conversation_status). Sending the same
`metadata.message_id` (or `Idempotency-Key` header) twice is answered once: the second call gets the first's replies.
The caller's metadata is data, never identity, unless it holds the token and is configured as trusted.
"""

from __future__ import annotations

from dataclasses import dataclass

from channels.rest.connector import RestConnector, RestRequest
from channels.rest.routes import build_router
from channels.rest.settings import RestChannelSettings
from gateway.connectors import BuiltChannel, ChannelParts, ChannelPlugin, WebhookConnector


@dataclass(frozen=True)
class RestChannel:
    name: str = "rest"
    settings: type[RestChannelSettings] = RestChannelSettings

    def build(self, settings: RestChannelSettings, parts: ChannelParts) -> BuiltChannel | None:
        if not settings.rest_channel_enabled:
            return None
        connector = RestConnector(settings.rest_channel_token, settings.rest_channel_trusted)
        _protocols: tuple[WebhookConnector] = (connector,)  # mypy holds it to the protocol
        routes = build_router(connector, parts.intake, settings.rest_channel_rate_per_minute)
        return BuiltChannel(connector, routes=routes)


CHANNEL: ChannelPlugin = RestChannel()

__all__ = ["CHANNEL", "RestConnector", "RestRequest"]
