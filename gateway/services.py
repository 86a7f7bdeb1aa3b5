"""Everything the app builds from its settings, in one place, passed down to routes and workers (no globals)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import structlog
from fastapi import Request, WebSocket
from rasa_sdk.executor import ActionExecutor

from bot.client import RasaClient
from crm_adapter.service import build_work_orders
from gateway.coordination import Coordination, build_coordination
from gateway.keys import installation_secret
from gateway.language import LanguageTagger
from gateway.media import media_key
from gateway.metrics import Metrics, build_metrics
from gateway.pipeline import Pipeline
from gateway.settings import Settings
from gateway.storage import Database

if TYPE_CHECKING:
    from crm_adapter.service import WorkOrderService
    from gateway.outbox import Outbox
    from handoff.service import HandoffService
    from handoff.slack import SlackDesk
    from kb_retrieval.service import KnowledgeService

log = structlog.get_logger(__name__)


@dataclass
class Services:
    settings: Settings
    db: Database
    coordination: Coordination
    http: httpx.AsyncClient
    bot: RasaClient
    language: LanguageTagger
    metrics: Metrics
    pipeline: Pipeline
    actions: ActionExecutor | None = None
    knowledge: KnowledgeService | None = None  # loaded in the app's start-up
    work_orders: WorkOrderService | None = None
    outbox: Outbox | None = None  # sends replies of pushing channels (SMS, Telegram); set in the app's start-up
    handoff: HandoffService | None = None  # people take over: status machine, agents, inbox; set in the start-up
    slack_desk: SlackDesk | None = None  # Slack as a second desk, when SLACK_* settings are present
    media_key: bytes = b""  # signs public links to stored media (gateway/media.py)
    actions_token: str = ""  # what Rasa must present at /actions/webhook (gateway/action_server.py)
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run work in the background, keep a reference (so it is not collected) and log its failure."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("task.failed", task=name, error=repr(t.exception()))

        task.add_done_callback(done)
        return task

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.outbox is not None:
            await self.outbox.close()
        if self.slack_desk is not None:
            await self.slack_desk.close()
        if self.work_orders is not None:
            await self.work_orders.close()
        await self.coordination.close()
        await self.http.aclose()
        await self.db.dispose()


async def build_services(settings: Settings, metrics: Metrics | None = None) -> Services:
    db = Database(settings.effective_database_url)
    await db.migrate()
    coordination = build_coordination(settings.redis_url, settings.redis_key_prefix)
    http = httpx.AsyncClient(limits=httpx.Limits(max_connections=100, max_keepalive_connections=20))
    bot = RasaClient(settings.rasa_url, http, timeout_seconds=settings.rasa_timeout_seconds,
                     token=installation_secret(settings.data_dir, "rasa.key", settings.rasa_token))
    language = LanguageTagger()
    metrics = metrics or build_metrics()
    pipeline = Pipeline(db, coordination, bot, language, metrics)
    services = Services(settings, db, coordination, http, bot, language, metrics, pipeline)
    services.media_key = media_key(settings.data_dir, settings.media_url_secret)
    services.actions_token = installation_secret(settings.data_dir, "actions.key", settings.actions_token)
    services.work_orders = await build_work_orders(settings, db, http=http)
    return services


def services_of(request: Request) -> Services:
    """FastAPI dependency: the app's services."""
    return request.app.state.services  # type: ignore[no-any-return]


def services_of_socket(websocket: WebSocket) -> Services:
    return websocket.app.state.services  # type: ignore[no-any-return]
