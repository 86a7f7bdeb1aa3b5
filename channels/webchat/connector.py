"""The web chat's four parts: verify (a well-formed session id, a rate limit), parse (a socket frame), render (the
widget's message shape), send (publish to the conversation's topic; the socket forwards it)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field

from channels.base import Capabilities, InboundMessage

SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


class WebchatFrame(BaseModel):
    type: Literal["message"]
    text: str = Field(min_length=1, max_length=4000)  # the widget caps at 2,000
    payload: str | None = Field(default=None, max_length=1000)
    client_id: str | None = Field(default=None, max_length=64)


class WebchatConnector:
    name = "webchat"
    capabilities = Capabilities(buttons=True, images=True, max_text_length=4000)

    def verify(self, session_id: str) -> bool:
        return bool(SESSION_ID.match(session_id))

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
