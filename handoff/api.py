"""The inbox's JSON API under /api/inbox (login, the list, one conversation, what agents do, agents, queues) and
its WebSocket (/api/inbox/ws: the "inbox" coordination topic, plus the followed conversation's messages).

Every route but login checks the role through gateway/auth.py; a browser's state-changing call carries the session's
CSRF token in `X-CSRF-Token`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, suppress
from typing import Annotated, Any, Literal

import structlog
from fastapi import (
    APIRouter,
    Depends,
    Form,
    HTTPException,
    Query,
    Request,
    Response,
    UploadFile,
    WebSocket,
    WebSocketDisconnect,
)
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from gateway import topics
from gateway.api_types import MAX_ROW_ID, RowId, RowIdField, ascii_int
from gateway.auth import (
    INBOX_ROLES,
    SESSION_COOKIE,
    SUPERVISOR_ROLES,
    Principal,
    principal_of_session,
    require_roles,
    session_of,
)
from gateway.coordination import Subscription
from gateway.media import MediaRejected, MediaStore, media_link
from gateway.media_routes import file_response
from gateway.message import OutboundMessage
from gateway.services import Services, services_of, services_of_socket
from handoff.agents import AgentError, AgentView
from handoff.canned import canned_responses
from handoff.context import TOPIC
from handoff.service import HandoffConflict, HandoffError, HandoffNotFound, HandoffService, Staff

log = structlog.get_logger(__name__)
LOGIN_ATTEMPTS = 10  # per address and e-mail in five minutes: guessing passwords stays slow
LOGIN_ATTEMPTS_PER_ADDRESS = 30  # per address in five minutes, whatever the e-mails
LOGIN_FAILURES_BEFORE_DELAY = 5  # failed logins of one account (from anywhere) before each try waits
LOGIN_DELAY_MAX_SECONDS = 2.0

Inbox = Annotated[Principal, Depends(require_roles(*INBOX_ROLES))]
Supervisor = Annotated[Principal, Depends(require_roles(*SUPERVISOR_ROLES))]
Admin = Annotated[Principal, Depends(require_roles("admin"))]
Anyone = Annotated[Principal, Depends(require_roles("agent", "supervisor", "content_editor", "admin"))]


def running_handoff(services: Services) -> HandoffService | None:
    """The app's handoff service (app/services.py keeps it beside the core's services), if it runs."""
    handoff: HandoffService | None = getattr(services, "handoff", None)
    return handoff


def handoff_of(services: Services = Depends(services_of)) -> HandoffService:
    handoff = running_handoff(services)
    if handoff is None:
        raise HTTPException(503, "the inbox is not available")
    return handoff


Service = Annotated[HandoffService, Depends(handoff_of)]


async def _staff_of(principal: Principal, service: HandoffService) -> Staff:
    """Who acts: the agent by their display name, or the principal by its own ("admin" for the admin token)."""
    agent = await _agent_of(principal, service)
    return Staff(principal.agent_id, agent.name if agent is not None else principal.name)


async def _agent_of(principal: Principal, service: HandoffService) -> AgentView | None:
    return await service.agents.get(principal.agent_id) if principal.agent_id is not None else None


async def _visible(conversation_id: str, principal: Principal, service: HandoffService) -> None:
    """404 unless the conversation is in one of the caller's queues: another department's citizens are not theirs
    to read or act on (and a 404 does not even tell that the conversation exists)."""
    scope = service.scope(principal.departments, principal.sees_all)
    department = await service.department_of(conversation_id)
    if department is None or (scope is not None and department not in scope):
        raise HTTPException(404, "no such conversation in your queues")


def _error(exc: HandoffError) -> HTTPException:
    if isinstance(exc, HandoffNotFound):
        return HTTPException(404, str(exc) or "not found")
    if isinstance(exc, HandoffConflict):
        return HTTPException(409, str(exc))
    return HTTPException(422, str(exc))


# ---- bodies -------------------------------------------------------------------------------------------------------


class LoginIn(BaseModel):
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=200)


class LoginOut(BaseModel):
    agent: AgentView
    csrf_token: str


class AgentIn(BaseModel):
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=8, max_length=200)
    name: str = Field(min_length=1, max_length=200)
    role: Literal["agent", "supervisor", "content_editor", "admin"] = "agent"
    departments: list[str] = Field(default_factory=list, max_length=50)
    capacity: int = Field(5, ge=0, le=100)
    language: Literal["zh", "en"] = "zh"


class AgentPatch(BaseModel):
    departments: list[str] | None = Field(None, max_length=50)
    capacity: int | None = Field(None, ge=0, le=100)
    role: Literal["agent", "supervisor", "content_editor", "admin"] | None = None
    active: bool | None = Field(None, description="false: the agent cannot log in and every session ends at once")
    password: str | None = Field(None, min_length=8, max_length=200,
                                 description="An admin's reset: the agent's sessions end")


class PasswordChange(BaseModel):
    current_password: str = Field(min_length=1, max_length=200)
    new_password: str = Field(min_length=8, max_length=200)


class MePatch(BaseModel):
    online: bool | None = None
    language: Literal["zh", "en"] | None = None


class ReplyIn(BaseModel):
    text: str = Field("", max_length=4000)
    image: str | None = Field(None, max_length=2000, description="URL of an image (shown as a link where needed)")


class NoteIn(BaseModel):
    text: str = Field(min_length=1, max_length=4000)


class TransferIn(BaseModel):
    agent_id: RowIdField | None = None
    department: str | None = Field(None, min_length=1, max_length=64)


# ---- routes -------------------------------------------------------------------------------------------------------


def build_router() -> APIRouter:
    router = APIRouter(prefix="/api/inbox", tags=["inbox"])

    @router.post("/login", response_model=LoginOut, summary="Log in (sets the session cookie)")
    async def login(body: LoginIn, request: Request, response: Response, service: Service) -> LoginOut:
        # JSON only: a cross-site HTML form cannot send it, so the login itself cannot be forged.
        if not request.headers.get("content-type", "").startswith("application/json"):
            raise HTTPException(415, "send JSON")
        email = body.email.strip().lower()
        client = request.client.host if request.client else "unknown"
        coordination = service.coordination
        # Limits per address and per address+account refuse a guesser without locking the account's owner out
        # (they log in from elsewhere); failures from everywhere only slow the account's logins down.
        if not await coordination.allow(f"inbox-login-ip:{client}", LOGIN_ATTEMPTS_PER_ADDRESS, 300):
            raise HTTPException(429, "too many login attempts from this address; wait five minutes",
                                headers={"Retry-After": "300"})
        if not await coordination.allow(f"inbox-login:{client}:{email}", LOGIN_ATTEMPTS, 300):
            raise HTTPException(429, "too many login attempts for this e-mail; wait five minutes",
                                headers={"Retry-After": "300"})
        failures_key = f"inbox-login-failures:{email}"
        failures = int(await coordination.get(failures_key) or 0)
        if failures >= LOGIN_FAILURES_BEFORE_DELAY:
            await asyncio.sleep(min(LOGIN_DELAY_MAX_SECONDS, 0.1 * 2 ** (failures - LOGIN_FAILURES_BEFORE_DELAY)))
        agent = await service.agents.authenticate(email, body.password)
        if agent is None:
            await coordination.set(failures_key, str(failures + 1), ttl_seconds=900)
            log.info("inbox.login_failed", failures=failures + 1)
            raise HTTPException(401, "wrong e-mail or password")
        if failures:
            await coordination.delete(failures_key)
        session_id, csrf = await service.agents.login(agent.id)
        secure = request.url.scheme == "https"
        response.set_cookie(SESSION_COOKIE, session_id, httponly=True, samesite="lax", secure=secure,
                            max_age=int(service.agents.session_lifetime.total_seconds()), path="/")
        await service.publish_presence(agent.id, True)
        return LoginOut(agent=agent, csrf_token=csrf)

    @router.post("/logout", status_code=204, summary="Log out (ends the session, goes offline)")
    async def logout(principal: Anyone, request: Request, service: Service) -> Response:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            await service.agents.logout(cookie)
        response = Response(status_code=204)
        response.delete_cookie(SESSION_COOKIE, path="/")
        if principal.agent_id is not None:
            await service.publish_presence(principal.agent_id, False)
        return response

    @router.get("/me", response_model=LoginOut, summary="Who is logged in (and the CSRF token)")
    async def me(principal: Anyone, service: Service) -> LoginOut:
        agent = await _agent_of(principal, service)
        if agent is None:
            raise HTTPException(404, "the admin token is not an agent")
        return LoginOut(agent=agent, csrf_token=principal.csrf_token or "")

    @router.patch("/me", response_model=AgentView, summary="Go online or offline; pick the inbox language")
    async def update_me(body: MePatch, principal: Anyone, service: Service) -> AgentView:
        if principal.agent_id is None:
            raise HTTPException(404, "the admin token is not an agent")
        view = await service.agents.update(principal.agent_id, online=body.online, language=body.language)
        if body.online is not None:
            await service.publish_presence(view.id, view.online)
        return view

    @router.post("/me/password", status_code=204, summary="Change my password (my other sessions end)",
                 responses={422: {"description": "The current password is wrong, or the new one too short"}})
    async def change_password(body: PasswordChange, principal: Anyone, request: Request, service: Service
                              ) -> Response:
        if principal.agent_id is None:
            raise HTTPException(404, "the admin token is not an agent")
        try:
            await service.agents.change_password(principal.agent_id, body.current_password, body.new_password,
                                                 keep_session=request.cookies.get(SESSION_COOKIE))
        except AgentError as exc:
            raise HTTPException(422, str(exc)) from exc
        return Response(status_code=204)

    @router.get("/conversations", summary="The list: by status, channel, department, assignee; newest first")
    async def conversations(
        _principal: Inbox, service: Service,
        status: str = Query("pending,open", max_length=64, description="comma-separated: bot,pending,open,resolved"),
        channel: str | None = Query(None, max_length=32),
        department: str | None = Query(None, max_length=64),
        assignee: str | None = Query(None, max_length=16, description="an agent id, 'me' or 'none'"),
        limit: int = Query(100, ge=1, le=500),
    ) -> dict[str, Any]:
        statuses = tuple(s for s in status.split(",") if s)
        unknown = set(statuses) - {"bot", "pending", "open", "resolved"}
        if unknown:
            raise HTTPException(422, f"unknown status {sorted(unknown)}")
        agent_id: int | None = None
        if assignee == "me":
            agent_id = _principal.agent_id if _principal.agent_id is not None else -1
        elif assignee and assignee != "none":
            agent_id = ascii_int(assignee)
            if agent_id is None or agent_id > MAX_ROW_ID:
                raise HTTPException(422, "assignee must be an agent id, 'me' or 'none'")
        items = await service.list(status=statuses, channel=channel, department=department, agent_id=agent_id,
                                   unassigned=assignee == "none", limit=limit,
                                   departments=service.scope(_principal.departments, _principal.sees_all))
        return {"conversations": items}

    @router.get("/conversations/{conversation_id}", summary="One conversation: history, events, contact panel")
    async def conversation(conversation_id: str, principal: Inbox, service: Service) -> dict[str, Any]:
        await _visible(conversation_id, principal, service)
        try:
            detail = await service.detail(conversation_id)
        except HandoffError as exc:
            raise _error(exc) from exc
        if detail["agent_id"] is not None and detail["agent_id"] == principal.agent_id:
            await service.mark_read(conversation_id)
        return detail

    async def act(name: str, conversation_id: str, principal: Principal, service: HandoffService,
                  **kwargs: Any) -> dict[str, Any]:
        await _visible(conversation_id, principal, service)
        staff = await _staff_of(principal, service)
        try:
            await getattr(service, name)(conversation_id, staff, **kwargs)
        except HandoffError as exc:
            raise _error(exc) from exc
        return {"ok": True, "conversation_id": conversation_id}

    @router.post("/conversations/{conversation_id}/claim", summary="Take the conversation (race-safe)")
    async def claim(conversation_id: str, principal: Inbox, service: Service) -> dict[str, Any]:
        if principal.agent_id is None:
            raise HTTPException(422, "only a logged-in agent can take a conversation")
        return await act("claim", conversation_id, principal, service)

    @router.post("/conversations/{conversation_id}/resolve", summary="Resolve (the citizen gets the survey)")
    async def resolve(conversation_id: str, principal: Inbox, service: Service) -> dict[str, Any]:
        return await act("resolve", conversation_id, principal, service)

    @router.post("/conversations/{conversation_id}/hand-back", summary="Hand the conversation back to the bot")
    async def hand_back(conversation_id: str, principal: Inbox, service: Service) -> dict[str, Any]:
        return await act("hand_back", conversation_id, principal, service)

    @router.post("/conversations/{conversation_id}/transfer", summary="To another agent or a department's queue")
    async def transfer(conversation_id: str, body: TransferIn, principal: Inbox, service: Service
                       ) -> dict[str, Any]:
        return await act("transfer", conversation_id, principal, service, agent_id=body.agent_id,
                         department=body.department)

    @router.post("/conversations/{conversation_id}/notes", summary="A private note (never sent to the citizen)")
    async def note(conversation_id: str, body: NoteIn, principal: Inbox, service: Service) -> dict[str, Any]:
        return await act("note", conversation_id, principal, service, text=body.text)

    @router.post("/conversations/{conversation_id}/reply", summary="Reply on the citizen's channel")
    async def reply(conversation_id: str, body: ReplyIn, principal: Inbox, service: Service) -> dict[str, Any]:
        if principal.agent_id is None:
            raise HTTPException(422, "only a logged-in agent can reply")
        await _visible(conversation_id, principal, service)
        staff = await _staff_of(principal, service)
        try:
            row = await service.reply(conversation_id, staff, OutboundMessage(text=body.text.strip() or None,
                                                                               image=body.image))
        except HandoffError as exc:
            raise _error(exc) from exc
        return {"ok": True, "message_id": row.id}

    @router.post("/conversations/{conversation_id}/attachments",
                 summary="Send a file (photo, PDF, voice) on the citizen's channel, with an optional caption")
    async def attach(conversation_id: str, principal: Inbox, service: Service, file: UploadFile,
                     caption: Annotated[str, Form(max_length=1000)] = "",
                     services: Services = Depends(services_of)) -> dict[str, Any]:
        if principal.agent_id is None:
            raise HTTPException(422, "only a logged-in agent can reply")
        await _visible(conversation_id, principal, service)
        store = MediaStore(services.settings.data_dir, services.settings.media_max_bytes)

        async def chunks() -> AsyncIterator[bytes]:
            while chunk := await file.read(256 * 1024):
                yield chunk

        try:
            stored = await store.keep(file.content_type, chunks())
        except MediaRejected as exc:
            raise HTTPException(422, f"the file was not accepted: {exc}") from exc
        link = media_link(services.settings.base_url, stored.ref, services.media_key, time.time())
        # Channels that cannot show a file get the link (the outbound renderer downgrades images the same way).
        if stored.mime.startswith("image/"):
            message = OutboundMessage(text=caption.strip() or None, image=link)
        else:
            name = (file.filename or stored.ref.rsplit("/", 1)[-1])[:120]
            message = OutboundMessage(text="\n".join(x for x in (caption.strip(), f"📎 {name}: {link}") if x))
        try:
            row = await service.reply(conversation_id, await _staff_of(principal, service), message)
        except HandoffError as exc:
            raise _error(exc) from exc
        return {"ok": True, "message_id": row.id, "ref": stored.ref, "mime": stored.mime, "size": stored.size}

    @router.get("/media/{name}", summary="A file a citizen or an agent sent (staff only)")
    async def media(name: str, _principal: Inbox, services: Services = Depends(services_of)) -> FileResponse:
        return file_response(services, name)

    @router.get("/canned", summary="Canned responses for the reply box")
    async def canned(_principal: Inbox) -> dict[str, Any]:
        return {"responses": canned_responses()}

    @router.get("/stats", summary="Queues for supervisors: waiting, open per agent, first response, CSAT today")
    async def stats(_principal: Supervisor, service: Service) -> dict[str, Any]:
        return await service.stats()

    @router.get("/agents", response_model=list[AgentView], summary="Agents (for transfers and the queues)")
    async def agents(_principal: Inbox, service: Service) -> list[AgentView]:
        return await service.agents.all()

    @router.post("/agents", response_model=AgentView, status_code=201, summary="Create an agent (admins)")
    async def create_agent(body: AgentIn, _principal: Admin, service: Service) -> AgentView:
        try:
            view = await service.agents.create(body.email, body.password, body.name, body.role, body.departments,
                                               body.capacity, body.language)
        except AgentError as exc:
            raise HTTPException(409 if "exists" in str(exc) else 422, str(exc)) from exc
        return view

    @router.patch("/agents/{agent_id}", response_model=AgentView, summary="Change departments, capacity, role")
    async def update_agent(agent_id: RowId, body: AgentPatch, _principal: Admin, service: Service) -> AgentView:
        try:
            view = await service.agents.update(agent_id, departments=body.departments, capacity=body.capacity,
                                               role=body.role)
            if body.password is not None:
                await service.agents.set_password(agent_id, body.password)
            if body.active is not None:
                view = await service.agents.set_active(agent_id, body.active)
                if not body.active:
                    await service.publish_presence(agent_id, False)
        except AgentError as exc:
            raise HTTPException(404 if "no agent" in str(exc) else 422, str(exc)) from exc
        return view

    @router.websocket("/ws")
    async def socket(websocket: WebSocket) -> None:
        """Live events for the inbox page. Needs a session cookie of an inbox role and a same-origin page."""
        services = services_of_socket(websocket)
        info = await session_of(websocket)
        origin = websocket.headers.get("origin")
        host = websocket.headers.get("host", "")
        if info is None or info.agent.role not in INBOX_ROLES:
            await websocket.close(code=1008, reason="log in to the inbox first")
            return
        if origin is not None and origin.split("://", 1)[-1] != host:
            await websocket.close(code=1008, reason="cross-origin socket refused")
            return
        await websocket.accept()
        services.metrics.inbox_sockets.inc()
        followed: asyncio.Task[None] | None = None
        principal = principal_of_session(info)
        handoff = running_handoff(services)
        assert handoff is not None  # a session exists only where the inbox does
        visible = _QueueFilter(handoff, handoff.scope(principal.departments, principal.sees_all))
        try:
            async with AsyncExitStack() as stack:
                inbox = await stack.enter_async_context(services.coordination.subscribe(TOPIC))
                forwarder = asyncio.create_task(_forward(websocket, inbox, visible=visible))
                try:
                    while True:
                        frame = await websocket.receive_json()
                        if isinstance(frame, dict) and frame.get("type") == "follow":
                            if followed is not None:
                                followed.cancel()
                            conversation_id = str(frame.get("conversation_id") or "")[:64]
                            if conversation_id and await visible(conversation_id, fresh=True):
                                followed = asyncio.create_task(_follow(websocket, services, conversation_id))
                        elif isinstance(frame, dict) and frame.get("type") == "ping":
                            await websocket.send_json({"type": "pong", "t": frame.get("t")})
                finally:
                    for task in (forwarder, followed):
                        if task is not None:
                            task.cancel()
                            with suppress(asyncio.CancelledError):
                                await task
        except (WebSocketDisconnect, ValueError):
            pass
        finally:
            services.metrics.inbox_sockets.dec()

    return router


class _QueueFilter:
    """Whether a conversation is in one of the socket's agent's queues; answers are kept a few seconds (the inbox
    topic carries every conversation's activity), so a transfer shows up within that time."""

    KEEP_SECONDS = 5.0

    def __init__(self, service: HandoffService, scope: tuple[str, ...] | None) -> None:
        self.service = service
        self.scope = scope
        self._known: dict[str, tuple[float, bool]] = {}

    async def __call__(self, conversation_id: str, fresh: bool = False) -> bool:
        if self.scope is None:
            return True
        now = time.monotonic()
        known = self._known.get(conversation_id)
        if known is not None and not fresh and now - known[0] < self.KEEP_SECONDS:
            return known[1]
        department = await self.service.department_of(conversation_id)
        answer = department is not None and department in self.scope
        if len(self._known) > 5000:
            self._known.clear()
        self._known[conversation_id] = (now, answer)
        return answer


async def _forward(websocket: WebSocket, subscription: Subscription, conversation_id: str | None = None,
                   visible: _QueueFilter | None = None) -> None:
    while True:
        event = await subscription.get(timeout=30)
        if event is None:
            continue
        about = event.get("conversation_id")
        if visible is not None and isinstance(about, str) and not await visible(about):
            continue  # another department's citizen
        if conversation_id is not None:
            event = {**event, "conversation_id": conversation_id}
        try:
            await websocket.send_json(event)
        except (WebSocketDisconnect, RuntimeError):
            return


async def _follow(websocket: WebSocket, services: Services, conversation_id: str) -> None:
    async with services.coordination.subscribe(topics.conversation(conversation_id)) as subscription:
        await _forward(websocket, subscription, conversation_id)


router = build_router()
