"""Who may call what: staff log in to the inbox (a server-side session in a cookie) or, for API clients, present the
operator's `ADMIN_TOKEN` as a bearer token (acting as an admin).

Roles: `agent` (the inbox), `supervisor` (the inbox and its queues), `content_editor` (KB articles and the studio),
`admin` (everything, and creating agents). A browser's state-changing request must carry its session's CSRF token
(header `X-CSRF-Token`); a bearer-token caller has no cookie to ride on and needs none.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Depends, Header, HTTPException, Request
from starlette.requests import HTTPConnection

from gateway.services import Services, services_of

if TYPE_CHECKING:
    from handoff.agents import SessionInfo

SESSION_COOKIE = "bj_inbox_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
STAFF_ROLES = ("agent", "supervisor", "content_editor", "admin")
INBOX_ROLES = ("agent", "supervisor", "admin")
SUPERVISOR_ROLES = ("supervisor", "admin")
CONTENT_ROLES = ("content_editor", "admin")


@dataclass(frozen=True)
class Principal:
    """The caller: a name for audit trails ("agent:3", "admin"), a role, and the agent behind a session."""

    name: str
    role: str
    agent_id: int | None = None
    language: str = "zh"
    csrf_token: str | None = None
    departments: tuple[str, ...] = ()  # the queues an agent or supervisor works (admins see every one)

    @property
    def sees_all(self) -> bool:
        return self.role == "admin"


async def session_of(connection: HTTPConnection) -> SessionInfo | None:
    """The inbox session the cookie names, if it is live (requests and sockets)."""
    services = connection.app.state.services
    handoff = getattr(services, "handoff", None)  # apps built without the inbox (unit tests) have no sessions
    cookie = connection.cookies.get(SESSION_COOKIE)
    if handoff is None or not cookie:
        return None
    return await handoff.agents.session(cookie)  # type: ignore[no-any-return]


def principal_of_session(info: SessionInfo) -> Principal:
    return Principal(f"agent:{info.agent.id}", info.agent.role, info.agent.id, info.agent.language, info.csrf_token,
                     tuple(info.agent.departments))


async def session_principal(request: Request) -> Principal | None:
    """The logged-in caller, with the CSRF token checked on state-changing requests (403 when it is wrong)."""
    info = await session_of(request)
    if info is None:
        return None
    if request.method not in SAFE_METHODS:
        given = request.headers.get(CSRF_HEADER, "")
        if not given or not hmac.compare_digest(given.encode(), info.csrf_token.encode()):
            raise HTTPException(403, f"send the session's CSRF token in {CSRF_HEADER}")
    return principal_of_session(info)


def _bearer_admin(token: str, authorization: str | None) -> Principal:
    if not token:
        raise HTTPException(status_code=403, detail="log in, or set ADMIN_TOKEN for bearer-token API clients")
    if authorization is None or not authorization.startswith("Bearer "):
        raise HTTPException(status_code=401, detail="log in, or send Authorization: Bearer <ADMIN_TOKEN>",
                            headers={"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(authorization[len("Bearer "):].encode(), token.encode()):
        raise HTTPException(status_code=403, detail="wrong token")
    return Principal("admin", "admin")


def require_roles(*roles: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller if logged in with one of `roles` (admins always), or holding the admin token."""

    async def dependency(
        request: Request,
        authorization: str | None = Header(default=None, description="Bearer <ADMIN_TOKEN> (API clients)"),
        services: Services = Depends(services_of),
    ) -> Principal:
        principal = await session_principal(request)
        if principal is not None:
            if principal.role != "admin" and principal.role not in roles:
                raise HTTPException(403, f"this needs the role {' or '.join(roles)}")
            return principal
        return _bearer_admin(services.settings.admin_token, authorization)

    return dependency


_content = require_roles(*CONTENT_ROLES)


async def require_admin(principal: Principal = Depends(_content)) -> str:
    """KB editing: content editors and admins (session), or the admin token; the caller's name for the audit trail."""
    return principal.name
