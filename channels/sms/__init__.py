"""SMS through Twilio: `POST /channels/sms/webhook` (form-encoded, signed), `POST /channels/sms/status` (receipts).
Replies leave through Twilio's REST API from the outbox; the webhook answers an empty TwiML response at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from channels.sms.connector import SmsConnector, SmsSettings
from channels.sms.routes import build_router
from channels.sms.settings import SmsChannelSettings
from gateway.connectors import BuiltChannel, ChannelParts, ChannelPlugin, PushConnector, WebhookConnector


@dataclass(frozen=True)
class SmsChannel:
    name: str = "sms"
    settings: type[SmsChannelSettings] = SmsChannelSettings

    def build(self, settings: SmsChannelSettings, parts: ChannelParts) -> BuiltChannel | None:
        if not (settings.twilio_account_sid and settings.twilio_auth_token and settings.twilio_from_number):
            return None
        connector = SmsConnector(SmsSettings(
            settings.twilio_account_sid, settings.twilio_auth_token, settings.twilio_from_number, parts.base_url,
            settings.twilio_api_base_url,
        ))
        _protocols: tuple[WebhookConnector, PushConnector] = (connector, connector)  # mypy holds it to both
        return BuiltChannel(connector, routes=build_router(connector, parts.intake))


CHANNEL: ChannelPlugin = SmsChannel()

__all__ = ["CHANNEL", "SmsConnector", "SmsSettings"]
