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

from bot.client import BotTurn
from gateway.app import create_app
from gateway.services import Services, build_services
from gateway.settings import Settings
from handoff.agents import AgentStore
from handoff.hours import ServiceHours
from handoff.service import HandoffService, HandoffSettings

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
async def inbox_app(settings: Settings) -> AsyncIterator[tuple[FastAPI, Services, httpx.AsyncClient]]:
    """The real app's routes over real services (database, coordination, handoff); the bot is a stand-in."""
    app = create_app(settings)
    services = await build_services(settings)
    services.bot = ScriptedBot()  # type: ignore[assignment]
    services.pipeline.bot = services.bot
    handoff = HandoffService(
        services.db, services.coordination, services.pipeline, AgentStore(services.db),
        ServiceHours.parse(settings.service_hours, settings.service_timezone),
        HandoffSettings(settings.handoff_default_department), services.work_orders,
    )
    handoff.install()
    await handoff.agents.ensure_first_admin(settings.inbox_admin_email, settings.inbox_admin_password)
    services.handoff = handoff
    app.state.services = services
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
