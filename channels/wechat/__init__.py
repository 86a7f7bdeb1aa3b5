"""A WeChat official account (公众号) through wechatpy: `GET/POST /channels/wechat/webhook` (signed; plaintext,
compatible and safe/AES modes), passive replies within WeChat's 5 seconds or customer-service messages after,
template messages for proactive notices outside the 48-hour window, and the custom menu.
`python -m channels.wechat.menu publish channels/wechat/menu.yml` publishes the menu.
"""

from __future__ import annotations

from dataclasses import dataclass

from channels.wechat.connector import WeChatConnector, WeChatSettings
from channels.wechat.passive import WeChatEventHook, passive_replies
from channels.wechat.routes import build_router
from channels.wechat.settings import WeChatChannelSettings
from gateway.connectors import BuiltChannel, ChannelParts, ChannelPlugin, PushConnector, WebhookConnector


@dataclass(frozen=True)
class WeChatChannel:
    name: str = "wechat"
    settings: type[WeChatChannelSettings] = WeChatChannelSettings

    def build(self, settings: WeChatChannelSettings, parts: ChannelParts) -> BuiltChannel | None:
        # The app's coordination (Redis when configured): every worker shares one access_token.
        connector = WeChatConnector.from_settings(settings, parts.coordination, parts.http)
        if connector is None:
            return None
        _protocols: tuple[WebhookConnector, PushConnector] = (connector, connector)  # mypy holds it to both
        passive = passive_replies(connector, parts.coordination, parts.intake.metrics, parts.intake.claim_unsent)
        return BuiltChannel(
            connector,
            routes=build_router(connector, parts.intake, passive, settings.wechat_passive_reply_seconds),
            before_turn=[WeChatEventHook(connector, parts.db)],  # subscribe → welcome; silent events stored only
            deliverer=passive.deliver,  # the webhook answers its turn's replies passively when it can
        )


CHANNEL: ChannelPlugin = WeChatChannel()

__all__ = ["CHANNEL", "WeChatConnector", "WeChatSettings"]
