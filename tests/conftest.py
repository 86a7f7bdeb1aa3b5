"""Shared fixtures: real PostgreSQL and Redis on this machine, and a real stack (Rasa + gateway) per test session.

The Rasa model is trained once and cached by a hash of the training data (models/<hash>.tar.gz), so only the first
run after a data change pays for training.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from app import launch
from app.launch import free_port, start_gateway, wait_http
from gateway.storage import Database

__all__ = ["free_port", "gateway_env", "start_gateway", "wait_http"]

ROOT = Path(__file__).resolve().parent.parent
SHARED_KB = ROOT.parent / "shared" / "kb" / "articles.jsonl"
POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
ADMIN_TOKEN = "test-admin-token"
# The secrets between the test gateways and the test Rasa (several gateways may share one Rasa).
RASA_TOKEN = "test-rasa-token"
ACTIONS_TOKEN = "test-actions-token"
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


# ---- PostgreSQL and Redis ----------------------------------------------------------------------------------------


@asynccontextmanager
async def temporary_postgres_database() -> AsyncIterator[str]:
    """A fresh PostgreSQL database, dropped afterwards; yields its async SQLAlchemy URL."""
    import asyncpg

    name = f"gw_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"postgresql+asyncpg://{base.split('://', 1)[1]}/{name}"
    finally:
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    async with temporary_postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated database for one test: a SQLite file, and a fresh PostgreSQL database (the same tests run on both)."""
    async with AsyncExitStack() as stack:
        if request.param == "postgres":
            url = await stack.enter_async_context(temporary_postgres_database())
        else:
            url = f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"
        db = Database(url)
        await db.migrate()
        await db.migrate()  # idempotent
        yield db
        await db.dispose()


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own in the real Redis; its keys are deleted afterwards."""
    import redis.asyncio as aioredis

    prefix = f"gwtest:{uuid.uuid4().hex[:10]}:"
    yield prefix
    client = aioredis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


# ---- the real stack -------------------------------------------------------------------------------------------------


@dataclass
class Stack:
    base_url: str
    rasa_url: str
    data_dir: Path
    gateway: subprocess.Popen[bytes]
    rasa: subprocess.Popen[bytes]
    env: dict[str, str]


@pytest.fixture(scope="session")
def rasa_model() -> Path:
    from bot.server import RASA_BIN
    from bot.training import ensure_model

    return ensure_model(ROOT, ROOT / "models", RASA_BIN)


def gateway_env(port: int, rasa_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """A test gateway: the shared test KB, quick retries."""
    settings = {
        "RASA_RETRY_SECONDS": "1", "KB_PATH": str(SHARED_KB), "LOG_LEVEL": "info", "ADMIN_TOKEN": ADMIN_TOKEN,
        "RASA_TOKEN": RASA_TOKEN, "ACTIONS_TOKEN": ACTIONS_TOKEN, **extra,
    }
    return launch.gateway_env(port, rasa_url, data_dir, **settings)


@contextmanager
def running_stack(rasa_model: Path, data_dir: Path, **extra_env: str) -> Iterator[Stack]:
    """Rasa and a gateway as real processes on free ports, ready (model loaded, KB indexed); their log tails are
    printed when start-up fails, both are stopped on exit."""
    from bot import server

    gateway_port, rasa_port = free_port(), free_port()
    base_url, rasa_url = f"http://127.0.0.1:{gateway_port}", f"http://127.0.0.1:{rasa_port}"
    rasa = server.start_rasa(rasa_model, rasa_port, f"{base_url}/actions/webhook", data_dir / "rasa.log",
                             action_token=ACTIONS_TOKEN, rasa_token=RASA_TOKEN)
    env = gateway_env(gateway_port, rasa_url, data_dir, **extra_env)
    gateway = start_gateway(env, data_dir / "gateway.log")
    try:
        wait_http(f"{base_url}/healthz", 60, gateway)
        server.wait_until_ready(rasa_url, 300, rasa, token=RASA_TOKEN)
        wait_http(f"{base_url}/readyz", 300, gateway)
        yield Stack(base_url, rasa_url, data_dir, gateway, rasa, env)
    except Exception:
        for name in ("gateway.log", "rasa.log"):
            path = data_dir / name
            if path.exists():
                sys.stderr.write(f"---- {name} (tail) ----\n{path.read_text(errors='replace')[-4000:]}\n")
        raise
    finally:
        server.stop(gateway)
        server.stop(rasa)


@pytest.fixture(scope="session")
def stack(rasa_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Rasa (trained on training_data/) and the gateway, as real processes on free ports."""
    with running_stack(rasa_model, tmp_path_factory.mktemp("stack")) as running:
        yield running
