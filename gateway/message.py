"""The normalized message: the one currency between channels and the rest of the gateway.

Inbound: what a citizen sent, whatever the channel. Outbound: what the bot or an agent says, before a connector
renders it into what its channel can show (downgrading what it cannot, so nothing is silently dropped).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal


@dataclass(frozen=True)
class Attachment:
    kind: Literal["image", "audio", "video", "file"]
    url: str | None = None
    ref: str | None = None  # a stored bytes reference (media folder) when the vendor's URL expires
    mime: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class Location:
    latitude: float
    longitude: float
    label: str | None = None


@dataclass(frozen=True)
class InboundMessage:
    channel: str
    channel_account: str
    external_user_id: str
    external_message_id: str | None
    text: str
    timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))
    attachments: tuple[Attachment, ...] = ()
    location: Location | None = None
    reply_payload: str | None = None  # the payload of a pressed button
    # Facts the connector read off the request (thread, event, no_reply …). Never identity: a caller's own fields
    # travel here as data only (the REST channel nests them under "client").
    metadata: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] | None = None  # the vendor payload, kept for audit
    # Identity claims, set only by a connector that proved them with the vendor (DESIGN.md, "Trust"):
    # a phone number that belongs to this sender (Twilio's From on a signed request, a Telegram user's own contact).
    verified_phone: str | None = None
    # False when the channel could not prove who sent it (e-mail without an SPF/DKIM/DMARC pass): such a message is
    # stored and may be answered, but it may not act on the citizen's account or orders (opt-out, ratings, status).
    sender_verified: bool = True


@dataclass(frozen=True)
class Button:
    title: str
    payload: str


@dataclass(frozen=True)
class OutboundMessage:
    text: str | None = None
    buttons: tuple[Button, ...] = ()
    image: str | None = None
    custom: dict[str, Any] | None = None

    def to_payload(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "buttons": [{"title": b.title, "payload": b.payload} for b in self.buttons] or None,
            "image": self.image,
            "custom": self.custom,
        }

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> OutboundMessage:
        return cls(
            text=data.get("text"),
            buttons=tuple(
                Button(str(b.get("title", "")), str(b.get("payload", ""))) for b in data.get("buttons") or ()
            ),
            image=data.get("image"),
            custom=data.get("custom"),
        )


@dataclass(frozen=True)
class Capabilities:
    """What a channel can show and do; the core decides by these, never by the channel's name."""

    buttons: bool
    images: bool
    max_text_length: int | None = None
    reply_window_hours: float | None = None  # how long after the citizen's last message we may write freely
    push: bool = False  # its connector sends (the outbox delivers); otherwise replies are read from storage
    templates: bool = False  # may write first outside the reply window (WeChat's template messages)
    media: bool = False  # attachments arrive as vendor references the connector fetches (kept in DATA_DIR/media)
    threads: bool = False  # a reply answers the citizen's last message in its own thread (e-mail)


@dataclass(frozen=True)
class DeliveryResult:
    state: Literal["sent", "retry", "failed"]
    retry_after_seconds: float | None = None
    external_id: str | None = None
    error: str | None = None
