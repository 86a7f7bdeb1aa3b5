"""Agents (staff accounts) and their login sessions.

Passwords are argon2id hashes (argon2-cffi). A session is a random id in an httponly cookie; the table keeps only its
SHA-256, with the session's CSRF token and expiry, so a stolen database does not hand out live sessions.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.clock import utc, utc_now
from gateway.storage import Database
from handoff.models import ROLES, Agent, AgentSession

log = structlog.get_logger(__name__)
# One lane (argon2's own threads): a verification then takes one core, and with one at a time (below) the other core
# is always left to the event loop that serves citizens. Hashes made with more lanes are upgraded at the next login.
_hasher = PasswordHasher(parallelism=1)
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
    active: bool = True

    @classmethod
    def of(cls, agent: Agent) -> AgentView:
        return cls(agent.id, agent.email, agent.name, agent.role, list(agent.departments or []), agent.capacity,
                   agent.online, agent.language, bool(agent.active))


@dataclass(frozen=True)
class SessionInfo:
    agent: AgentView
    csrf_token: str


def _hash_id(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise AgentError(f"role must be one of {', '.join(ROLES)}")


def _check_password(password: str) -> None:
    if len(password) < 8:
        raise AgentError("the password needs at least 8 characters")


async def _existing(session: AsyncSession, agent_id: int) -> Agent:
    agent = await session.get(Agent, agent_id)
    if agent is None:
        raise AgentError(f"no agent {agent_id}")
    return agent


class AgentStore:
    def __init__(self, db: Database, session_hours: float = 12.0) -> None:
        self.db = db
        self.session_lifetime = timedelta(hours=session_hours)
        # argon2 is slow and memory-hard on purpose: it runs in a thread (never on the event loop, which would stall
        # every citizen's socket), one at a time (64 MiB, one core), so a burst of logins queues instead.
        self._hashing = asyncio.Semaphore(1)

    async def _hash(self, password: str) -> str:
        async with self._hashing:
            return await asyncio.to_thread(_hasher.hash, password)

    async def _verify(self, password_hash: str, password: str) -> bool:
        async with self._hashing:
            try:
                return await asyncio.to_thread(_hasher.verify, password_hash, password)
            except (VerificationError, InvalidHashError):
                return False

    async def create(self, email: str, password: str, name: str, role: str = "agent",
                     departments: list[str] | None = None, capacity: int = 5, language: str = "zh") -> AgentView:
        _check_role(role)
        _check_password(password)
        if "@" not in email:
            raise AgentError("email is not an e-mail address")
        password_hash = await self._hash(password)
        agent = Agent(
            email=email.strip().lower(), name=name.strip() or email, password_hash=password_hash, role=role,
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
        if not await self._verify(agent.password_hash if agent else _DUMMY_HASH, password):
            return None
        if agent is None or not agent.active:
            return None
        if _hasher.check_needs_rehash(agent.password_hash):  # older parameters: upgraded while we know the password
            password_hash = await self._hash(password)
            async with self.db.sessions() as session, session.begin():
                stored = await session.get(Agent, agent.id)
                if stored is not None:
                    stored.password_hash = password_hash
        return AgentView.of(agent)

    async def login(self, agent_id: int) -> tuple[str, str]:
        """A new session: (cookie value, CSRF token). Logging in also puts the agent online."""
        session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = utc_now()
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
        if utc(stored.expires_at) <= utc_now() or not agent.active:
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
            agent = await _existing(session, agent_id)
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
                _check_role(role)
                agent.role = role
        return AgentView.of(agent)

    async def change_password(self, agent_id: int, current: str, new: str, keep_session: str | None = None) -> None:
        """The agent's own change: the current password proves it is them; every other session of theirs ends."""
        async with self.db.sessions() as session:
            agent = await session.get(Agent, agent_id)
        if agent is None or not await self._verify(agent.password_hash, current):
            raise AgentError("the current password is wrong")
        await self.set_password(agent_id, new, keep_session=keep_session)

    async def set_password(self, agent_id: int, new: str, keep_session: str | None = None) -> None:
        """A new password (an admin's reset, or the agent's own change); sessions end but `keep_session`."""
        _check_password(new)
        password_hash = await self._hash(new)
        async with self.db.sessions() as session, session.begin():
            agent = await _existing(session, agent_id)
            agent.password_hash = password_hash
            await self._end_sessions(session, agent_id, keep_session)
        log.info("agent.password_changed", agent_id=agent_id)

    async def set_active(self, agent_id: int, active: bool) -> AgentView:
        """Deactivate (every session ends at once, the agent goes offline and cannot log in) or reactivate."""
        async with self.db.sessions() as session, session.begin():
            agent = await _existing(session, agent_id)
            if not active and agent.role == "admin" and agent.active:
                others = (await session.execute(
                    select(Agent.id).where(Agent.role == "admin", Agent.active.is_(True), Agent.id != agent_id)
                    .limit(1)
                )).first()
                if others is None:
                    raise AgentError("the last active admin cannot be deactivated")
            agent.active = active
            if not active:
                agent.online = False
                await self._end_sessions(session, agent_id, None)
        log.info("agent.activated" if active else "agent.deactivated", agent_id=agent_id)
        return AgentView.of(agent)

    @staticmethod
    async def _end_sessions(session: AsyncSession, agent_id: int, keep_session: str | None) -> None:
        query = delete(AgentSession).where(AgentSession.agent_id == agent_id)
        if keep_session:
            query = query.where(AgentSession.id_hash != _hash_id(keep_session))
        await session.execute(query)

    async def get(self, agent_id: int) -> AgentView | None:
        async with self.db.sessions() as session:
            agent = await session.get(Agent, agent_id)
            return AgentView.of(agent) if agent is not None else None

    async def all(self) -> list[AgentView]:
        async with self.db.sessions() as session:
            rows = (await session.execute(select(Agent).order_by(Agent.id))).scalars()
            return [AgentView.of(a) for a in rows]
