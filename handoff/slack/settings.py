"""The Slack desk's settings (environment variables, combined into the app's Settings)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings


class SlackDeskSettings(BaseSettings):
    """Slack as a second desk, when the bot token, signing secret and channel are set."""

    slack_bot_token: str = Field("", description="Slack bot token (xoxb-…); handoffs are posted to Slack when set.")
    slack_signing_secret: str = Field("", description="Slack signing secret: checks every request from Slack.")
    slack_handoff_channel: str = Field("", description="Slack channel id where each handoff becomes a thread.")
    slack_api_base_url: str = Field(
        "", description="Another address for Slack's Web API (a test stand-in); empty = https://slack.com/api/."
    )

    @property
    def slack_configured(self) -> bool:
        return bool(self.slack_bot_token and self.slack_signing_secret and self.slack_handoff_channel)
