"""Routes of the web chat: the demo page, the widget's files and the socket."""

from __future__ import annotations

import asyncio
import json
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import ValidationError
from sqlalchemy import select

from channels.webchat.connector import WebchatConnector, WebchatFrame
from gateway.coordination import Subscription
from gateway.pipeline import message_view
from gateway.services import Services, services_of_socket
from gateway.storage import ChannelIdentity, Conversation

log = structlog.get_logger(__name__)
HERE = Path(__file__).resolve().parent
VISIBLE_SENDERS = ("citizen", "bot", "agent", "system")
MESSAGES_PER_MINUTE = 30
MESSAGES_PER_MINUTE_PER_IP = 120  # several visitors may share an address (an office, a carrier's NAT)
HELLO_SECONDS = 20.0  # a socket that does not say hello in this time is closed


async def _conversation_of(services: Services, session_id: str) -> str | None:
    async with services.db.sessions() as session:
        row = (
            await session.execute(
                select(Conversation.id)
                .join(ChannelIdentity, ChannelIdentity.id == Conversation.identity_id)
                .where(
                    ChannelIdentity.channel == "webchat",
                    ChannelIdentity.channel_account == "default",
                    ChannelIdentity.external_user_id == session_id,
                )
                .order_by(Conversation.last_activity_at.desc())
                .limit(1)
            )
        ).scalar_one_or_none()
    return row


def build_router(connector: WebchatConnector) -> APIRouter:
    router = APIRouter()

    @router.get("/", include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse((HERE / "templates" / "index.html").read_text(encoding="utf-8"))

    @router.get("/webchat/{name}", include_in_schema=False)
    async def widget_file(name: str) -> FileResponse:
        if name not in ("widget.js", "widget.css"):
            return FileResponse(HERE / "static" / "missing", status_code=404)  # pragma: no cover
        media = "text/javascript" if name.endswith(".js") else "text/css"
        return FileResponse(HERE / "static" / name, media_type=media, headers={"Cache-Control": "no-cache"})

    @router.websocket("/channels/webchat/ws")
    async def socket(websocket: WebSocket) -> None:
        services = services_of_socket(websocket)
        origin = websocket.headers.get("origin")
        if not connector.origin_allowed(origin, websocket.headers.get("host"), services.settings.base_url):
            log.warning("webchat.origin_refused")
            await websocket.close(code=1008, reason="pages of this origin may not open the web chat")
            return
        await websocket.accept()
        services.metrics.webchat_sockets.inc()
        user_agent = websocket.headers.get("user-agent")
        client = websocket.client.host if websocket.client else "unknown"
        try:
            try:
                first = await asyncio.wait_for(websocket.receive_text(), HELLO_SECONDS)
            except TimeoutError:
                await websocket.close(code=1008, reason="send {type: hello} first")
                return
            token, pending = _hello(first)
            session_id = connector.verify(token)
            if session_id is None:  # none, made up or altered: a new, empty session
                token = connector.issue()
                session_id = connector.verify(token)
                assert session_id is not None
            await websocket.send_json({"type": "session", "session": token})
            async with AsyncExitStack() as stack:
                forwarder: asyncio.Task[None] | None = None
                conversation_id = await _conversation_of(services, session_id)

                async def follow(conv_id: str) -> asyncio.Task[None]:
                    subscription = await stack.enter_async_context(
                        services.coordination.subscribe(f"conversation:{conv_id}")
                    )
                    return asyncio.create_task(_forward(websocket, subscription))

                if conversation_id is not None:
                    forwarder = await follow(conversation_id)
                await _send_history(websocket, services, conversation_id)
                try:
                    while True:
                        raw = pending if pending is not None else await websocket.receive_text()
                        pending = None
                        frame = _parse_frame(raw)
                        if isinstance(frame, FrameError):
                            await websocket.send_json(
                                {"type": "error", "reason": frame.code, "detail": frame.detail,
                                 "client_id": frame.client_id}
                            )
                            continue
                        # Per visitor and per address: a stranger minting sessions is held back too.
                        allowed = await services.coordination.allow(
                            f"webchat:{session_id}", MESSAGES_PER_MINUTE, 60
                        ) and await services.coordination.allow(f"webchat-ip:{client}", MESSAGES_PER_MINUTE_PER_IP, 60)
                        if not allowed:
                            await websocket.send_json(
                                {"type": "error", "reason": "rate_limited", "detail": "too many messages",
                                 "client_id": frame.client_id}
                            )
                            continue
                        received = await services.pipeline.receive(connector.parse(session_id, frame, user_agent))
                        if forwarder is None:
                            # First message of a new citizen: the echo was published before we could listen.
                            forwarder = await follow(received.conversation_id)
                            await _send_history(websocket, services, received.conversation_id)
                        elif received.duplicate:
                            await _send_history(websocket, services, received.conversation_id)
                        services.spawn(
                            services.pipeline.process(received.conversation_id), name="webchat-turn"
                        )
                finally:
                    if forwarder is not None:
                        forwarder.cancel()
                        with suppress(asyncio.CancelledError):
                            await forwarder
        except WebSocketDisconnect:
            pass
        finally:
            services.metrics.webchat_sockets.dec()

    return router


@dataclass(frozen=True)
class FrameError:
    code: str  # empty, too_long, unsupported, invalid: the widget words these politely in zh or en
    detail: str
    client_id: str | None = None


def _hello(raw: str) -> tuple[object, str | None]:
    """The session token a `{"type": "hello", "session": …}` frame presents; any other first frame presents none
    and is handled as a message afterwards."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, a number of thousands of digits, nesting too deep
        return None, raw
    if isinstance(data, dict) and data.get("type") == "hello":
        return data.get("session"), None
    return None, raw


def _parse_frame(raw: str) -> WebchatFrame | FrameError:
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, a number of thousands of digits, nesting too deep
        return FrameError("invalid", "not JSON")
    client_id = data.get("client_id") if isinstance(data, dict) else None
    client_id = client_id if isinstance(client_id, str) and len(client_id) <= 64 else None
    if not isinstance(data, dict) or data.get("type") != "message":
        return FrameError("unsupported", "only {type: message} frames are accepted", client_id)
    if isinstance(data.get("text"), str) and not data["text"].strip():
        return FrameError("empty", "text is blank", client_id)
    try:
        return WebchatFrame.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        code = {"string_too_short": "empty", "string_too_long": "too_long"}.get(first["type"], "invalid")
        if code == "empty" and where != "text":
            code = "invalid"
        return FrameError(code, f"{where}: {first['msg']}", client_id)


async def _send_history(websocket: WebSocket, services: Services, conversation_id: str | None) -> None:
    messages: list[dict[str, Any]] = []
    if conversation_id is not None:
        messages = [
            message_view(m)
            for m in await services.pipeline.history(conversation_id)
            if m.sender in VISIBLE_SENDERS
        ]
    await websocket.send_json({"type": "history", "messages": messages})


async def _forward(websocket: WebSocket, subscription: Subscription) -> None:
    while True:
        event = await subscription.get(timeout=30)
        if event is None:
            continue
        if event.get("type") == "message" and (event.get("message") or {}).get("from") not in VISIBLE_SENDERS:
            continue
        try:
            await websocket.send_json(event)
        except (WebSocketDisconnect, RuntimeError):
            return
