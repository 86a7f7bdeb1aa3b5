"""The web chat's four parts: verify (a session the server issued and signed, an allowed page origin), parse (a socket
frame), render (the widget's message shape), send (publish to the conversation's topic; the socket forwards it).

A browser never chooses its identity: on connecting it presents the session it was given earlier (`hello`), and a
missing, made-up or altered one gets a new, empty session. A session is 128 random bits and an HMAC over them with
the installation's key, so it cannot be guessed, forged or edited into someone else's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

from gateway.connectors import Forged, VendorRequest
from gateway.message import Capabilities, InboundMessage

SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")  # the identity part; the server issues 22 characters (128 bits)
SIGNATURE_CHARACTERS = 32


class WebchatFrame(BaseModel):
    type: Literal["message"]
    text: str = Field(min_length=1, max_length=4000)  # the widget caps at 2,000
    payload: str | None = Field(default=None, max_length=1000)
    client_id: str | None = Field(default=None, max_length=64)


class WebchatConnector:
    name = "webchat"
    channel_account = "default"
    capabilities = Capabilities(buttons=True, images=True, max_text_length=4000)

    def __init__(self, session_key: bytes, allowed_origins: tuple[str, ...] = (), own_base_url: str = "") -> None:
        self._key = session_key
        self.allowed_origins = frozenset(o.rstrip("/").lower() for o in allowed_origins if o)
        self.own_base_url = own_base_url

    async def verify(self, request: VendorRequest) -> None:
        """The socket's page is ours or one the operator listed (a browser always sends Origin on WebSockets)."""
        if not self.origin_allowed(request.headers.get("origin"), request.headers.get("host"), self.own_base_url):
            raise Forged("pages of this origin may not open the web chat")

    # -- verify -------------------------------------------------------------------------------------------------------

    def _signature(self, session_id: str) -> str:
        mac = hmac.new(self._key, f"webchat-session:{session_id}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode()[:SIGNATURE_CHARACTERS]

    def issue(self, session_id: str | None = None) -> str:
        """A new session token `<id>.<signature>` (the id is the visitor's identity on this channel)."""
        session_id = session_id or secrets.token_urlsafe(16)
        return f"{session_id}.{self._signature(session_id)}"

    def session_of(self, token: object) -> str | None:
        """The session id inside a token this server issued, or None (absent, malformed, forged or altered)."""
        if not isinstance(token, str) or len(token) > 128:
            return None
        session_id, _, signature = token.partition(".")
        if not SESSION_ID.match(session_id) or len(signature) != SIGNATURE_CHARACTERS:
            return None
        if not hmac.compare_digest(signature.encode(), self._signature(session_id).encode()):
            return None
        return session_id

    def origin_allowed(self, origin: str | None, host: str | None, own_base_url: str) -> bool:
        """A page may open the socket from the gateway's own origin or an operator-listed one. No Origin header:
        not a browser (browsers always send it on WebSockets), so there is no victim's page to protect."""
        if origin is None:
            return True
        origin = origin.rstrip("/").lower()
        if "*" in self.allowed_origins or origin in self.allowed_origins:
            return True
        own = urlsplit(own_base_url)
        if origin == f"{own.scheme}://{own.netloc}".lower():
            return True
        parts = urlsplit(origin)
        return bool(host) and parts.netloc == (host or "").lower()

    # -- parse --------------------------------------------------------------------------------------------------------

    def parse(self, session_id: str, frame: WebchatFrame, user_agent: str | None = None) -> InboundMessage:
        metadata: dict[str, Any] = {}
        if frame.client_id:
            metadata["client_id"] = frame.client_id
        if user_agent:
            metadata["user_agent"] = user_agent[:300]
        return InboundMessage(
            channel=self.name,
            channel_account="default",
            external_user_id=session_id,
            # The widget's client id makes a message resent after a reconnect a duplicate, not a second turn.
            external_message_id=f"{session_id}:{frame.client_id}" if frame.client_id else None,
            text=frame.text,
            reply_payload=frame.payload,
            metadata=metadata,
        )
