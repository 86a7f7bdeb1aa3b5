"""The WeChat official account's settings (environment variables, combined into the app's Settings)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings

from gateway.settings import PROJECT_ROOT


class WeChatChannelSettings(BaseSettings):
    """The WeChat channel is served when the AppID, AppSecret and Token are set."""

    wechat_app_id: str = Field(
        "", description="WeChat official account AppID; the channel is served when it, the secret and token are set."
    )
    wechat_app_secret: str = Field("", description="The account's AppSecret (fetches the access_token).")
    wechat_token: str = Field("", description="The Token set in the account's server configuration (signatures).")
    wechat_encoding_aes_key: str = Field(
        "", description="EncodingAESKey (43 characters) for compatible and safe mode; empty = plaintext mode only."
    )
    wechat_api_base_url: str = Field(
        "", description="Another address for api.weixin.qq.com (a test stand-in); empty = WeChat's own."
    )
    wechat_notice_template_id: str = Field(
        "", description="Template message id for proactive notices outside the 48-hour customer-service window."
    )
    wechat_passive_reply_seconds: float = Field(
        4.0, ge=0, lt=5, description="How long the webhook waits for the bot to answer passively (WeChat waits 5 s)."
    )
    wechat_menu_path: Path = Field(
        PROJECT_ROOT / "channels" / "wechat" / "menu.yml",
        description="The custom menu (published by a command), its click payloads and the welcome message.",
    )
