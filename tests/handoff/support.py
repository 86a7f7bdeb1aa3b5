"""Shared pieces of the handoff tests: a stand-in bot whose NLU result each test sets, and an inbox app on a real
database (create_app's routes with services built directly, without the KB's start-up)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from app.factory import create_app, serve
from app.services import AppServices, build_app_services
from app.settings import Settings
from gateway.engine import BotTurn

ADMIN_EMAIL = "admin@binjiang.gov.cn"
ADMIN_PASSWORD = "admin-password-1"
ADMIN_TOKEN = "test-admin-token"


@dataclass
class ScriptedBot:
    """Answers every turn with an echo; `intent`, `confidence` and `slots` say what NLU "understood"."""

    intent: str = "greet"
    confidence: float = 0.9
    slots: dict[str, Any] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    async def turn(self, sender: str, text: str, metadata: dict[str, Any]) -> BotTurn:
        self.calls.append(text)
        await asyncio.sleep(0)
        slots, self.slots = self.slots, {}  # slots are set for one turn
        return BotTurn(messages=[{"recipient_id": sender, "text": f"bot:{text}"}], intent=self.intent,
                       confidence=self.confidence, slots_set=slots)

    async def is_ready(self) -> bool:
        return True


def inbox_settings(tmp_path: Path, database_url: str = "", **extra: Any) -> Settings:
    return Settings(
        data_dir=tmp_path, database_url=database_url, rasa_url="http://127.0.0.1:9", admin_token=ADMIN_TOKEN,
        inbox_admin_email=ADMIN_EMAIL, inbox_admin_password=ADMIN_PASSWORD, service_hours="24x7",
        **extra,
    )


@asynccontextmanager
async def inbox_app(settings: Settings) -> AsyncIterator[tuple[FastAPI, AppServices, httpx.AsyncClient]]:
    """The real app's routes over real services (database, coordination, handoff); the bot is a stand-in."""
    app = create_app(settings)
    services = await build_app_services(settings)  # as at start-up, but no background work (no KB to load)
    services.bot = ScriptedBot()  # type: ignore[assignment]
    services.pipeline.bot = services.bot
    serve(app, services)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
            yield app, services, client
    finally:
        await services.close()


async def login(client: httpx.AsyncClient, email: str, password: str) -> str:
    """Logs in (the client keeps the cookie); returns the CSRF token."""
    response = await client.post("/api/inbox/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return str(response.json()["csrf_token"])
