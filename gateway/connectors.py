"""How a channel plugs into the gateway: the connector protocols, the request a webhook hands its connector, the one
object each channel package exports, and the intake every channel route talks to.

A channel package (channels/<name>/) exports `CHANNEL`, a `ChannelPlugin`: its name, the settings it reads, and
`build(settings, parts)`, which returns the channel's parts when its settings are present (else None, and the channel
is not served). `channels/__init__.py` lists the plugins; nothing else in the gateway names a channel. The core
decides by `Capabilities` (push, templates, media, threads), never by a channel's name.

Every connector has a name, an account and capabilities (`Connector`). A channel fed by webhooks verifies each
request with the vendor's proof before anything in it is read (`WebhookConnector.verify`, raising `Forged`). A
channel whose replies are sent rather than read from storage renders, sends, fetches media and closes
(`PushConnector`): the outbox calls those. A channel's routes call only the `Intake`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import httpx
import structlog
from fastapi import APIRouter, HTTPException, Request, WebSocket

from gateway.calendar import WorkingCalendar
from gateway.coordination import Coordination, Subscription
from gateway.hooks import ReplyDeliverer, TurnHook
from gateway.message import Capabilities, DeliveryResult, InboundMessage, OutboundMessage
from gateway.metrics import Metrics
from gateway.pipeline import Received, TurnOutcome
from gateway.storage import Database, Message

log = structlog.get_logger(__name__)

# ---- what a webhook received ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VendorRequest:
    """One webhook request as a connector verifies and parses it: nothing here has been trusted yet."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # names in lower case
    body: bytes = b""
    client: str = "unknown"  # the caller's address (after the trusted proxy)
    raw_query: str = ""  # the query string as sent (signatures over the URL need it byte for byte)


class Forged(Exception):
    """Not the vendor's (a wrong or missing signature, secret or token, a replay): refused, nothing is stored."""


class Unreadable(ValueError):
    """Authentic, but not something the channel can read: refused with a clear reason."""


# ---- the connector protocols ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderContext:
    """What a connector may need besides the message itself to render it."""

    # The channel's own thread data of the citizen's last message (an e-mail's Message-ID and subject) and who
    # writes this one (bot, agent, system): a reply goes in that thread.
    thread: Mapping[str, Any] = field(default_factory=dict)
    # A notice sent outside the reply window, of this kind (work_order_assigned …): rendered as a template.
    template_kind: str | None = None


class Connector(Protocol):
    """What every channel's connector is."""

    name: str
    channel_account: str
    capabilities: Capabilities


class WebhookConnector(Connector, Protocol):
    """A channel the vendor calls: each request is verified before anything in it is read."""

    async def verify(self, request: VendorRequest) -> None:
        """Raise `Forged` unless the request carries the vendor's proof (signature, secret, token)."""
        ...


@runtime_checkable
class PushConnector(Connector, Protocol):
    """A channel whose replies the outbox sends (SMS, Telegram, WeChat, e-mail)."""

    def render(self, recipient: str, outbound: OutboundMessage, language: str,
               context: RenderContext | None = None) -> list[dict[str, Any]]:
        """Vendor payloads (one per vendor call), downgrading what the channel cannot show; [] = nothing to send."""
        ...

    async def send(self, payload: dict[str, Any]) -> DeliveryResult: ...

    async def fetch_media(self, attachment: dict[str, Any]) -> tuple[str | None, AsyncIterator[bytes]]:
        """The bytes of an attachment the vendor only referenced, and their type."""
        ...

    async def close(self) -> None: ...


# ---- the intake: what a channel's routes call ----------------------------------------------------------------------


class Intake(Protocol):
    """The gateway as a channel's routes and workers see it."""

    metrics: Metrics

    async def receive(self, inbound: InboundMessage) -> Received:
        """Store the message durably (deduplicated per sender); all a fast-acking webhook waits for."""
        ...

    def process_soon(self, conversation_id: str, name: str) -> None:
        """Answer the conversation's waiting turns in the background, in order."""
        ...

    async def process(self, conversation_id: str) -> None:
        """Answer the conversation's waiting turns now (a channel that waits on the turn itself)."""
        ...

    def run_soon(self, work: Coroutine[Any, Any, Any], name: str) -> None:
        """Other background work of a channel (answering a vendor's callback, a turn it waits on)."""
        ...

    async def take(self, inbound: InboundMessage, name: str) -> Received:
        """`receive`, then `process_soon` unless it was a redelivery (already being answered)."""
        ...

    async def handle(self, inbound: InboundMessage) -> TurnOutcome:
        """Receive and answer at once: the turn's replies (channels that answer in the response)."""
        ...

    async def receipt(self, channel: str, external_id: str, state: str, error: str | None = None) -> bool:
        """A vendor's delivery receipt for a sent message; False when the id is not ours."""
        ...

    async def claim_unsent(self, message_ids: list[int], wait_seconds: float) -> bool:
        """Take replies away from the outbox (a channel answers them itself, in its webhook's response)."""
        ...

    async def conversation_of(self, channel: str, channel_account: str, external_user_id: str) -> str | None: ...

    async def conversation_status(self, conversation_id: str) -> str | None:
        """bot, pending, open, resolved (None: no such conversation)."""
        ...

    async def say(self, conversation_id: str, messages: list[OutboundMessage], sender: str) -> list[Message]:
        """Tell the citizen more outside a turn's replies, on their channel (a phone call texts the order number)."""
        ...

    async def history(self, conversation_id: str) -> list[Message]: ...

    def follow(self, conversation_id: str) -> AbstractAsyncContextManager[Subscription]:
        """The conversation's live events (new messages, typing, delivery ticks)."""
        ...

    async def allow(self, key: str, limit: int, window_seconds: float) -> bool:
        """A rate limit shared by every worker."""
        ...


# ---- the plugin each channel package exports ------------------------------------------------------------------------


@dataclass(frozen=True)
class ChannelParts:
    """What the gateway lends a channel to build itself with."""

    coordination: Coordination
    http: httpx.AsyncClient
    db: Database
    intake: Intake
    data_dir: Path
    base_url: str  # PUBLIC_BASE_URL, else host:port
    media_max_bytes: int
    # When people answer (SERVICE_HOURS): a phone call is put through then, else the caller leaves a message.
    service_hours: WorkingCalendar = field(default_factory=WorkingCalendar)
    # Words and phrases citizens are likely to say, by language (KB titles, the intents' examples): speech hints.
    phrases: Callable[[str], Sequence[str]] = lambda _language: ()


Worker = Callable[[], Coroutine[Any, Any, None]]


@dataclass
class BuiltChannel:
    """A channel whose settings are present, ready to be served."""

    connector: Connector
    routes: APIRouter | None = None
    # Hooks of the channel's own, run before the bot (in the order app/hooks.py gives the channels' hooks a place).
    before_turn: Sequence[TurnHook] = ()
    # Told instead of the outbox when replies for this channel were stored (WeChat answers passively if it can).
    deliverer: ReplyDeliverer | None = None
    workers: Sequence[tuple[str, Worker]] = ()  # background work, by name: the e-mail poller
    closers: Sequence[Callable[[], Awaitable[None]]] = ()


class ChannelPlugin(Protocol):
    """The one object a channel package exports (`CHANNEL`)."""

    @property
    def name(self) -> str: ...

    @property
    def settings(self) -> type[Any]:
        """The pydantic settings class of the environment variables it reads (mixed into the app's Settings)."""
        ...

    def build(self, settings: Any, parts: ChannelParts) -> BuiltChannel | None:
        """The channel's parts when its settings are present; None: not configured, not served."""
        ...


async def read_vendor_request(request: Request) -> VendorRequest:
    """The request as a connector sees it (the body is read here: its size was limited before, gateway/http_guard)."""
    return VendorRequest(
        request.method, request.url.path, dict(request.query_params),
        {k.lower(): v for k, v in request.headers.items()}, await request.body(),
        request.client.host if request.client else "unknown", request.url.query,
    )


async def verified_request(connector: WebhookConnector, request: Request, refused: int = 403) -> VendorRequest:
    """The request, once its connector verified it; else HTTP `refused` (403, or 401 for a bearer token) before
    anything in it is parsed, and nothing is stored."""
    vendor = await read_vendor_request(request)
    try:
        await connector.verify(vendor)
    except Forged as exc:
        log.warning("channel.forged", channel=connector.name, reason=str(exc))
        raise HTTPException(status_code=refused, detail=str(exc)) from None
    return vendor


def socket_request(websocket: WebSocket) -> VendorRequest:
    """A WebSocket's opening handshake as a connector sees it (no body)."""
    return VendorRequest(
        "GET", websocket.url.path, dict(websocket.query_params), {k.lower(): v for k, v in websocket.headers.items()},
        b"", websocket.client.host if websocket.client else "unknown", websocket.url.query,
    )
