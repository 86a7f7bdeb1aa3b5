"""The web chat: an embeddable widget (one script tag) talking to the gateway over a WebSocket.

On connecting the browser says hello with the session the server issued it earlier (signed, 128 random bits; kept in
localStorage) and gets it back, or a new one when it had none or it was not genuine; then the conversation's history,
and the bot's and agents' messages and a typing indicator as they happen. The session never travels in the URL.
"""

from channels.webchat.connector import WebchatConnector, WebchatFrame

__all__ = ["WebchatConnector", "WebchatFrame"]
