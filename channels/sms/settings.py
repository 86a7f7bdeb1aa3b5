"""The Twilio account's settings (shared by the SMS and voice channels) and the SMS channel's own (environment
variables, combined into the app's Settings)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings


class TwilioAccountSettings(BaseSettings):
    """One Twilio account for texts and calls."""

    twilio_account_sid: str = Field("", description="Twilio account SID; the SMS channel is served when it is set.")
    twilio_auth_token: str = Field("", description="Twilio auth token: checks webhook signatures, authenticates sends.")
    twilio_api_base_url: str = Field(
        "", description="Another address for Twilio's REST API (a staging or test stand-in); empty = Twilio's own."
    )


class SmsChannelSettings(TwilioAccountSettings):
    """The SMS channel is served when the account, token and number are set."""

    twilio_from_number: str = Field("", description="The Twilio number (E.164) replies are sent from.")
