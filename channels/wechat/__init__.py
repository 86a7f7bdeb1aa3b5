"""A WeChat official account (公众号) through wechatpy: `GET/POST /channels/wechat/webhook` (signed; plaintext,
compatible and safe/AES modes), passive replies within WeChat's 5 seconds or customer-service messages after,
template messages for proactive notices outside the 48-hour window, and the custom menu.

`python -m channels.wechat.menu publish channels/wechat/menu.yml` publishes the menu.
"""

from channels.wechat.connector import WeChatConnector, WeChatSettings

__all__ = ["WeChatConnector", "WeChatSettings"]
