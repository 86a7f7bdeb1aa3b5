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
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from channels.webchat.connector import WebchatConnector, WebchatFrame
from gateway.connectors import Forged, Intake, socket_request
from gateway.coordination import Subscription
from gateway.pipeline import message_view
from gateway.static import serve_files

log = structlog.get_logger(__name__)
HERE = Path(__file__).resolve().parent
VISIBLE_SENDERS = ("citizen", "bot", "agent", "system")
MESSAGES_PER_MINUTE = 30
MESSAGES_PER_MINUTE_PER_IP = 120  # several visitors may share an address (an office, a carrier's NAT)
HELLO_SECONDS = 20.0  # a socket that does not say hello in this time is closed


def build_router(connector: WebchatConnector, intake: Intake) -> APIRouter:
    router = APIRouter()

    @router.get("/", include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse((HERE / "templates" / "index.html").read_text(encoding="utf-8"))

    serve_files(router, "/webchat/{name}", HERE / "static", {"widget.js": "text/javascript", "widget.css": "text/css"})

    @router.websocket("/channels/webchat/ws")
    async def socket(websocket: WebSocket) -> None:
        handshake = socket_request(websocket)
        try:
            await connector.verify(handshake)
        except Forged:
            log.warning("webchat.origin_refused")
            await websocket.close(code=1008, reason="pages of this origin may not open the web chat")
            return
        await websocket.accept()
        intake.metrics.webchat_sockets.inc()
        user_agent = handshake.headers.get("user-agent")
        client = handshake.client
        try:
            try:
                first = await asyncio.wait_for(websocket.receive_text(), HELLO_SECONDS)
            except TimeoutError:
                await websocket.close(code=1008, reason="send {type: hello} first")
                return
            token, pending = _hello(first)
            session_id = connector.session_of(token)
            if session_id is None:  # none, made up or altered: a new, empty session
                token = connector.issue()
                session_id = connector.session_of(token)
                assert session_id is not None
            await websocket.send_json({"type": "session", "session": token})
            async with AsyncExitStack() as stack:
                forwarder: asyncio.Task[None] | None = None
                conversation_id = await intake.conversation_of(connector.name, connector.channel_account, session_id)

                async def follow(conv_id: str) -> asyncio.Task[None]:
                    subscription = await stack.enter_async_context(intake.follow(conv_id))
                    return asyncio.create_task(_forward(websocket, subscription))

                if conversation_id is not None:
                    forwarder = await follow(conversation_id)
                await _send_history(websocket, intake, conversation_id)
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
                        allowed = await intake.allow(f"webchat:{session_id}", MESSAGES_PER_MINUTE, 60) and \
                            await intake.allow(f"webchat-ip:{client}", MESSAGES_PER_MINUTE_PER_IP, 60)
                        if not allowed:
                            await websocket.send_json(
                                {"type": "error", "reason": "rate_limited", "detail": "too many messages",
                                 "client_id": frame.client_id}
                            )
                            continue
                        received = await intake.receive(connector.parse(session_id, frame, user_agent))
                        if forwarder is None:
                            # First message of a new citizen: the echo was published before we could listen.
                            forwarder = await follow(received.conversation_id)
                            await _send_history(websocket, intake, received.conversation_id)
                        elif received.duplicate:
                            await _send_history(websocket, intake, received.conversation_id)
                        intake.process_soon(received.conversation_id, "webchat-turn")
                finally:
                    if forwarder is not None:
                        forwarder.cancel()
                        with suppress(asyncio.CancelledError):
                            await forwarder
        except WebSocketDisconnect:
            pass
        finally:
            intake.metrics.webchat_sockets.dec()

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


async def _send_history(websocket: WebSocket, intake: Intake, conversation_id: str | None) -> None:
    messages: list[dict[str, Any]] = []
    if conversation_id is not None:
        messages = [message_view(m) for m in await intake.history(conversation_id) if m.sender in VISIBLE_SENDERS]
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
