"""Fixtures of the work-order tests: databases (SQLite and the real PostgreSQL), contacts, a controllable clock,
and one real Request Tracker 5 per test session (Debian's request-tracker5 with SQLite)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.launch import free_port
from crm_adapter.routing import load_routing
from gateway.storage import Contact, Database
from tests.conftest import temporary_postgres_database
from tests.crm_adapter import rt_instance


@dataclass
class FakeClock:
    """A clock the test moves by hand."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 23, 2, 0, tzinfo=UTC))  # Monday 10:00 in Binjiang


async def open_database(kind: str, stack: AsyncExitStack, tmp_path: Path) -> Database:
    if kind == "postgres":
        url = await stack.enter_async_context(temporary_postgres_database())
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / f'wo-{uuid.uuid4().hex[:6]}.db'}"
    db = Database(url)
    stack.push_async_callback(db.dispose)
    await db.migrate()
    return db


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    async with AsyncExitStack() as stack:
        yield await open_database(request.param, stack, tmp_path)


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    async with AsyncExitStack() as stack:
        yield await open_database("sqlite", stack, tmp_path)


async def add_contact(db: Database, name: str = "张三", phone: str = "+8613800000001") -> str:
    async with db.sessions() as session, session.begin():
        contact = Contact(display_name=name, phone=phone, language="zh")
        session.add(contact)
        await session.flush()
        return contact.id


@pytest.fixture(scope="session")
def rt_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[rt_instance.RtInstance]:
    """A real Request Tracker 5 for the whole session: one queue per department, our custom fields, a token."""
    if not rt_instance.rt_available():
        pytest.fail(
            "Request Tracker is not installed: apt-get install request-tracker5 rt5-db-sqlite rt5-standalone"
        )
    directory = tmp_path_factory.mktemp("rt")
    port = free_port()
    queues = list(load_routing().departments)
    token = rt_instance.prepare(directory, queues, port)
    server = rt_instance.start(directory, port, token)
    try:
        yield server
    finally:
        server.stop()
