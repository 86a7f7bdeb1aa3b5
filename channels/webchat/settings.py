"""The web chat's settings (environment variables; the app's Settings combines every package's)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings


class WebchatChannelSettings(BaseSettings):
    """Whether the web chat is served, which pages may open it, how its sessions are signed."""

    webchat_enabled: bool = Field(True, description="Serve the web chat page, widget and socket.")
    webchat_allowed_origins: str = Field(
        "", description="Comma-separated origins whose pages may open the web chat socket (the city's site, e.g. "
        "https://www.binjiang.gov.cn); the gateway's own address is always allowed. `*` allows any.",
    )
    webchat_session_secret: str = Field(
        "", description="Signs the web chat sessions the server issues; empty = a random key kept in DATA_DIR. "
        "Set it when workers do not share DATA_DIR.",
    )
