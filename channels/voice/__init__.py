"""The phone line through Twilio Programmable Voice: `POST /channels/voice/webhook` greets a call and answers each
turn in TwiML (the bot's words spoken, the next `<Gather>` listening for speech or keys); a caller who asks for a
person is put through in service hours (`<Dial>`) and otherwise leaves a message (`<Record>`, transcribed) for the
inbox. Whatever is said to a caller after the call is texted to their number.
"""

from __future__ import annotations

from dataclasses import dataclass

from channels.voice.connector import VoiceConnector, VoiceSettings, texting_connector
from channels.voice.routes import build_router
from channels.voice.settings import VoiceChannelSettings
from gateway.connectors import BuiltChannel, ChannelParts, ChannelPlugin, PushConnector, WebhookConnector
from gateway.inline_replies import InlineReplies


@dataclass(frozen=True)
class VoiceChannel:
    name: str = "voice"
    settings: type[VoiceChannelSettings] = VoiceChannelSettings

    def build(self, settings: VoiceChannelSettings, parts: ChannelParts) -> BuiltChannel | None:
        if not (settings.voice_enabled and settings.twilio_account_sid and settings.twilio_auth_token):
            return None
        sender = settings.voice_sms_from_number or str(getattr(settings, "twilio_from_number", "") or "")
        connector = VoiceConnector(
            VoiceSettings(
                public_base_url=parts.base_url,
                english_numbers=frozenset(n.strip() for n in settings.voice_english_numbers.split(",") if n.strip()),
                transfer_to=settings.voice_transfer_to.strip(),
                voice_zh=settings.voice_voice_zh, voice_en=settings.voice_voice_en,
                max_spoken_chars=settings.voice_max_spoken_chars,
                message_max_seconds=settings.voice_message_max_seconds,
            ),
            texting_connector(settings.twilio_account_sid, settings.twilio_auth_token, sender, parts.base_url,
                              settings.twilio_api_base_url, parts.http),
            parts.phrases,
        )
        _protocols: tuple[WebhookConnector, PushConnector] = (connector, connector)  # mypy holds it to both
        # A turn's replies are spoken in the webhook's own TwiML; the outbox texts only what the call could not say.
        inline = InlineReplies(parts.coordination, parts.intake.metrics, parts.intake.claim_unsent)
        return BuiltChannel(
            connector,
            routes=build_router(connector, parts.intake, inline, settings.voice_turn_seconds,
                                parts.service_hours.is_open),
            deliverer=inline.deliver,
        )


CHANNEL: ChannelPlugin = VoiceChannel()

__all__ = ["CHANNEL", "VoiceConnector", "VoiceSettings"]
