"""The REST channel's four parts: verify (an optional bearer token), parse, render (Rasa REST items), send (none:
replies travel in the HTTP response)."""

from __future__ import annotations

import hmac
from typing import Any

from pydantic import BaseModel, Field, field_validator

from gateway.connectors import Forged, VendorRequest
from gateway.message import Capabilities, InboundMessage, OutboundMessage


class RestRequest(BaseModel):
    sender: str = Field(min_length=1, max_length=256, description="The citizen's id in the calling system.")
    message: str = Field(min_length=1, max_length=4096, description="What the citizen wrote, or a button payload.")
    metadata: dict[str, Any] | None = Field(
        default=None, description="Free metadata; `message_id` makes the call idempotent."
    )

    @field_validator("message")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("message is blank")
        return value


class RestConnector:
    name = "rest"
    channel_account = "default"
    capabilities = Capabilities(buttons=True, images=True)

    def __init__(self, token: str = "", trusted: bool = False) -> None:
        self.token = token
        # A caller that proved the token may vouch for its citizens' phone numbers, if the operator says so.
        self.trusted = trusted and bool(token)

    async def verify(self, request: VendorRequest) -> None:
        """The bearer token, when one is set (an open channel takes anyone, as a pseudonymous sender)."""
        if not self.token:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            raise Forged("missing or wrong bearer token")

    def parse(self, request: RestRequest, idempotency_key: str | None = None) -> InboundMessage:
        """The caller's metadata is kept as data under `client`: nothing in it is identity or a channel fact (no
        verified phone, contact, thread or opt-out), unless a trusted integration vouches for a phone."""
        client = dict(request.metadata or {})
        message_id = idempotency_key or client.pop("message_id", None)
        verified_phone = client.pop("verified_phone", None) if self.trusted else None
        text = request.message
        # A Rasa-style payload ("/intent{...}") is a pressed button: keep it as the payload, show it as text.
        reply_payload = text if text.startswith("/") else None
        return InboundMessage(
            channel=self.name,
            channel_account="default",
            external_user_id=request.sender,
            # Scoped to the sender by the pipeline: another sender's key is another message.
            external_message_id=str(message_id) if message_id is not None else None,
            text=text,
            reply_payload=reply_payload,
            metadata={"client": client} if client else {},
            verified_phone=str(verified_phone) if isinstance(verified_phone, str | int) and verified_phone else None,
        )

    def render(self, recipient_id: str, outbound: OutboundMessage, meta: dict[str, Any]) -> dict[str, Any]:
        item: dict[str, Any] = {"recipient_id": recipient_id}
        if outbound.text is not None:
            item["text"] = outbound.text
        if outbound.buttons:
            item["buttons"] = [{"title": b.title, "payload": b.payload} for b in outbound.buttons]
        if outbound.image:
            item["image"] = outbound.image
        if outbound.custom is not None:
            item["custom"] = outbound.custom
        item["meta"] = meta
        return item
