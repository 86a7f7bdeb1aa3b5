"""Agents (staff accounts) and their login sessions.

Passwords are argon2id hashes (argon2-cffi). A session is a random id in an httponly cookie; the table keeps only its
SHA-256, with the session's CSRF token and expiry, so a stolen database does not hand out live sessions.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from gateway.storage import Database
from handoff.models import ROLES, Agent, AgentSession

log = structlog.get_logger(__name__)
_hasher = PasswordHasher()
# Verified against when the e-mail is unknown, so a wrong e-mail costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash("not-a-password")


class AgentError(ValueError):
    """A request about agents that cannot be done (the message says why; HTTP 409/422)."""


@dataclass(frozen=True)
class AgentView:
    id: int
    email: str
    name: str
    role: str
    departments: list[str]
    capacity: int
    online: bool
    language: str

    @classmethod
    def of(cls, agent: Agent) -> AgentView:
        return cls(agent.id, agent.email, agent.name, agent.role, list(agent.departments or []), agent.capacity,
                   agent.online, agent.language)


@dataclass(frozen=True)
class SessionInfo:
    agent: AgentView
    csrf_token: str


def _hash_id(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class AgentStore:
    def __init__(self, db: Database, session_hours: float = 12.0) -> None:
        self.db = db
        self.session_lifetime = timedelta(hours=session_hours)

    async def create(self, email: str, password: str, name: str, role: str = "agent",
                     departments: list[str] | None = None, capacity: int = 5, language: str = "zh") -> AgentView:
        if role not in ROLES:
            raise AgentError(f"role must be one of {', '.join(ROLES)}")
        if len(password) < 8:
            raise AgentError("the password needs at least 8 characters")
        if "@" not in email:
            raise AgentError("email is not an e-mail address")
        agent = Agent(
            email=email.strip().lower(), name=name.strip() or email, password_hash=_hasher.hash(password), role=role,
            departments=list(departments or []), capacity=capacity, online=False,
            language=language if language in ("zh", "en") else "zh", active=True,
        )
        try:
            async with self.db.sessions() as session, session.begin():
                session.add(agent)
        except IntegrityError as exc:
            raise AgentError(f"an agent with e-mail {email} exists") from exc
        log.info("agent.created", agent_id=agent.id, role=role)
        return AgentView.of(agent)

    async def ensure_first_admin(self, email: str, password: str) -> AgentView | None:
        """Create the admin from settings on first start (when no admin exists yet)."""
        if not email or not password:
            return None
        async with self.db.sessions() as session:
            exists = (await session.execute(select(Agent.id).where(Agent.role == "admin").limit(1))).first()
        if exists:
            return None
        try:
            return await self.create(email, password, name="admin", role="admin", departments=[], capacity=0)
        except AgentError:  # another worker made it first
            return None

    async def authenticate(self, email: str, password: str) -> AgentView | None:
        async with self.db.sessions() as session:
            agent = (
                await session.execute(select(Agent).where(Agent.email == email.strip().lower()))
            ).scalar_one_or_none()
        try:
            _hasher.verify(agent.password_hash if agent else _DUMMY_HASH, password)
        except (VerificationError, InvalidHashError):
            return None
        if agent is None or not agent.active:
            return None
        return AgentView.of(agent)

    async def login(self, agent_id: int) -> tuple[str, str]:
        """A new session: (cookie value, CSRF token). Logging in also puts the agent online."""
        session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        async with self.db.sessions() as session, session.begin():
            session.add(AgentSession(id_hash=_hash_id(session_id), agent_id=agent_id, csrf_token=csrf,
                                     created_at=now, expires_at=now + self.session_lifetime))
            agent = await session.get(Agent, agent_id)
            if agent is not None:
                agent.online = True
        return session_id, csrf

    async def session(self, session_id: str) -> SessionInfo | None:
        if not session_id:
            return None
        async with self.db.sessions() as session:
            row = (
                await session.execute(
                    select(AgentSession, Agent)
                    .join(Agent, Agent.id == AgentSession.agent_id)
                    .where(AgentSession.id_hash == _hash_id(session_id))
                )
            ).first()
        if row is None:
            return None
        stored, agent = row
        expires = stored.expires_at if stored.expires_at.tzinfo else stored.expires_at.replace(tzinfo=UTC)
        if expires <= datetime.now(UTC) or not agent.active:
            return None
        return SessionInfo(AgentView.of(agent), stored.csrf_token)

    async def logout(self, session_id: str) -> None:
        async with self.db.sessions() as session, session.begin():
            row = await session.get(AgentSession, _hash_id(session_id))
            if row is None:
                return
            agent = await session.get(Agent, row.agent_id)
            await session.execute(delete(AgentSession).where(AgentSession.id_hash == _hash_id(session_id)))
            if agent is not None:
                agent.online = False

    async def update(self, agent_id: int, *, online: bool | None = None, language: str | None = None,
                     departments: list[str] | None = None, capacity: int | None = None,
                     role: str | None = None) -> AgentView:
        async with self.db.sessions() as session, session.begin():
            agent = await session.get(Agent, agent_id)
            if agent is None:
                raise AgentError(f"no agent {agent_id}")
            if online is not None:
                agent.online = online
            if language is not None:
                if language not in ("zh", "en"):
                    raise AgentError("language must be zh or en")
                agent.language = language
            if departments is not None:
                agent.departments = list(departments)
            if capacity is not None:
                agent.capacity = capacity
            if role is not None:
                if role not in ROLES:
                    raise AgentError(f"role must be one of {', '.join(ROLES)}")
                agent.role = role
        return AgentView.of(agent)

    async def all(self) -> list[AgentView]:
        async with self.db.sessions() as session:
            rows = (await session.execute(select(Agent).order_by(Agent.id))).scalars()
            return [AgentView.of(a) for a in rows]
