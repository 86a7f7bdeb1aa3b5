"""The phone line's settings (Twilio Programmable Voice on the SMS channel's account; environment variables,
combined into the app's Settings)."""

from __future__ import annotations

from pydantic import Field

from channels.sms.settings import TwilioAccountSettings


class VoiceChannelSettings(TwilioAccountSettings):
    """The phone line is served when the Twilio account and auth token are set and VOICE_ENABLED is true."""

    voice_enabled: bool = Field(True, description="Serve the phone line (/channels/voice/*) when Twilio is set.")
    voice_english_numbers: str = Field(
        "", description="Called numbers (E.164, comma-separated) answered in English; the others in Chinese."
    )
    voice_transfer_to: str = Field(
        "", description="Where a caller who asks for a person is put through in service hours (a number, or a "
        "sip: address); empty = callers leave a message."
    )
    voice_sms_from_number: str = Field(
        "", description="The number texts to callers come from (order numbers, long answers, agents' replies); "
        "empty = TWILIO_FROM_NUMBER (neither: callers are not texted)."
    )
    voice_voice_zh: str = Field("Polly.Zhiyu", description="Twilio <Say> voice for Chinese.")
    voice_voice_en: str = Field("Polly.Joanna", description="Twilio <Say> voice for English.")
    voice_turn_seconds: float = Field(
        9.0, gt=0, lt=14, description="How long a call waits for the bot's answer (Twilio waits 15 s); later "
        "answers are texted."
    )
    voice_max_spoken_chars: int = Field(
        240, ge=40, description="Longer answers are spoken up to a sentence end within this many characters and "
        "texted in full."
    )
    voice_message_max_seconds: int = Field(120, ge=10, le=600, description="Longest message a caller may leave.")
