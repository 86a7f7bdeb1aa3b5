"""Who may call what: staff log in to the inbox (a server-side session in a cookie) or, for API clients, present the
operator's `ADMIN_TOKEN` as a bearer token (acting as an admin).

Roles: `agent` (the inbox), `supervisor` (the inbox and its queues), `content_editor` (KB articles and the studio),
`admin` (everything, and creating agents). A browser's state-changing request must carry its session's CSRF token
(header `X-CSRF-Token`); a bearer-token caller has no cookie to ride on and needs none.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from fastapi import Depends, Header, HTTPException, Request
from starlette.requests import HTTPConnection

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


class StaffMember(Protocol):
    """A logged-in member of staff, as the core needs to know them (the handoff's agents are such)."""

    @property
    def id(self) -> int: ...

    @property
    def role(self) -> str: ...

    @property
    def language(self) -> str: ...

    @property
    def departments(self) -> list[str]: ...


class StaffSession(Protocol):
    @property
    def agent(self) -> StaffMember: ...

    @property
    def csrf_token(self) -> str: ...


class StaffSessions(Protocol):
    """Where logins live (handoff/agents.py's AgentStore); the app lends it to the core."""

    async def session(self, session_id: str) -> StaffSession | None: ...


async def session_of(connection: HTTPConnection) -> StaffSession | None:
    """The staff session the cookie names, if it is live (requests and sockets)."""
    sessions: StaffSessions | None = getattr(connection.app.state.services, "staff_sessions", None)
    cookie = connection.cookies.get(SESSION_COOKIE)
    if sessions is None or not cookie:  # an app built without logins (unit tests) has no sessions
        return None
    return await sessions.session(cookie)


def principal_of_session(info: StaffSession) -> Principal:
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


def bearer_matches(authorization: str | None, tokens: Sequence[str], what: str) -> None:
    """The one check of a bearer token, for every route that takes one: 403 when none is configured (the route is
    closed), 401 without a bearer token, 403 with one that is not one of `tokens` (compared in constant time).
    `what` names the setting."""
    configured = [t for t in tokens if t]
    if not configured:
        raise HTTPException(status_code=403, detail=f"closed: {what} is not set")
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise HTTPException(status_code=401, detail=f"send Authorization: Bearer <{what}>",
                            headers={"WWW-Authenticate": "Bearer"})
    if not any(hmac.compare_digest(given.strip().encode(), t.encode()) for t in configured):
        raise HTTPException(status_code=403, detail="wrong token")


def bearer_admin(admin_token: str, authorization: str | None) -> Principal:
    """The operator's ADMIN_TOKEN as a bearer token: an admin (API clients and outside checks)."""
    bearer_matches(authorization, [admin_token], "ADMIN_TOKEN (or log in)")
    return Principal("admin", "admin")


def require_roles(*roles: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller if logged in with one of `roles` (admins always), or holding the admin token."""

    async def dependency(
        request: Request,
        authorization: str | None = Header(default=None, description="Bearer <ADMIN_TOKEN> (API clients)"),
    ) -> Principal:
        principal = await session_principal(request)
        if principal is not None:
            if principal.role != "admin" and principal.role not in roles:
                raise HTTPException(403, f"this needs the role {' or '.join(roles)}")
            return principal
        return bearer_admin(request.app.state.services.settings.admin_token, authorization)

    return dependency


async def require_admin(principal: Principal = Depends(require_roles(*CONTENT_ROLES))) -> str:
    """KB editing: content editors and admins (session), or the admin token; the caller's name for the audit trail."""
    return principal.name
