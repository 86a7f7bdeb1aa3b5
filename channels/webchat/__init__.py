"""The web chat: an embeddable widget (one script tag) talking to the gateway over a WebSocket.

The browser keeps a random session id (its identity), gets the conversation's history on every (re)connect, and
receives the bot's and agents' messages and a typing indicator as they happen.
"""

from channels.webchat.connector import WebchatConnector, WebchatFrame

__all__ = ["WebchatConnector", "WebchatFrame"]
