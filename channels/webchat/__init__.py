"""The web chat: an embeddable widget (one script tag) talking to the gateway over a WebSocket.

On connecting the browser says hello with the session the server issued it earlier (signed, 128 random bits; kept in
localStorage) and gets it back, or a new one when it had none or it was not genuine; then the conversation's history,
and the bot's and agents' messages and a typing indicator as they happen. The session never travels in the URL.
"""

from __future__ import annotations

from dataclasses import dataclass

from channels.webchat.connector import WebchatConnector, WebchatFrame
from channels.webchat.routes import build_router
from channels.webchat.settings import WebchatChannelSettings
from gateway.connectors import BuiltChannel, ChannelParts, ChannelPlugin, WebhookConnector
from gateway.keys import installation_secret


@dataclass(frozen=True)
class WebchatChannel:
    name: str = "webchat"
    settings: type[WebchatChannelSettings] = WebchatChannelSettings

    def build(self, settings: WebchatChannelSettings, parts: ChannelParts) -> BuiltChannel | None:
        if not settings.webchat_enabled:
            return None
        origins = tuple(o.strip() for o in settings.webchat_allowed_origins.split(",") if o.strip())
        key = installation_secret(parts.data_dir, "webchat-session.key", settings.webchat_session_secret)
        connector = WebchatConnector(key.encode(), origins, parts.base_url)
        _protocols: tuple[WebhookConnector] = (connector,)  # mypy holds it to the protocol (verify: the origin)
        return BuiltChannel(connector, routes=build_router(connector, parts.intake))


CHANNEL: ChannelPlugin = WebchatChannel()

__all__ = ["CHANNEL", "WebchatConnector", "WebchatFrame"]
