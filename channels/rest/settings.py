"""The REST channel's settings (environment variables; the app's Settings combines every package's)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings


class RestChannelSettings(BaseSettings):
    """How the REST channel is served and whom it trusts."""

    rest_channel_enabled: bool = Field(True, description="Serve POST /channels/rest/webhook (trusted integrations).")
    rest_channel_token: str = Field(
        "", description="When set, the REST channel requires `Authorization: Bearer <token>`."
    )
    rest_channel_trusted: bool = Field(
        False, description="With REST_CHANNEL_TOKEN set: the authenticated caller is a trusted integration, and its "
        "metadata.verified_phone is taken as the citizen's verified phone (else metadata is data, never identity).",
    )
    rest_channel_rate_per_minute: int = Field(
        1200, ge=0, description="Turns per minute one address may send on the REST channel without its token "
        "(0 = unlimited); a caller with REST_CHANNEL_TOKEN is not limited.",
    )
