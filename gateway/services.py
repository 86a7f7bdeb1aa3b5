"""The core's services, built from settings and passed down to routes and workers (no globals).

The composition root (app/) builds the features on top of these and keeps them beside them (app.state.services is
the app's own `AppServices`, a subclass); the core only ever reads what is declared here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import structlog
from fastapi import Request, WebSocket

from gateway.auth import StaffSessions
from gateway.coordination import Coordination, build_coordination
from gateway.engine import RasaClient
from gateway.intake import GatewayIntake
from gateway.keys import installation_secret
from gateway.language import LanguageTagger
from gateway.media import media_key
from gateway.metrics import Metrics, build_metrics
from gateway.outbox import Outbox, RetryPolicy
from gateway.pipeline import Pipeline
from gateway.settings import GatewaySettings
from gateway.storage import Database

log = structlog.get_logger(__name__)

@dataclass(frozen=True)
class ReadinessCheck:
    """A feature's part of /readyz (gateway/health.py)."""

    probe: Callable[[], Awaitable[str]]  # "ok", or a word saying what is not (loading, revoked …)
    required: bool = True  # False: reported, never a reason to be unready


class ActionRunner(Protocol):
    """Runs a Rasa custom-action call (rasa-sdk's executor, built by the app from bot/actions)."""

    async def run(self, action_call: dict[str, Any]) -> Any: ...


@dataclass
class Services:
    settings: GatewaySettings
    db: Database
    coordination: Coordination
    http: httpx.AsyncClient
    bot: RasaClient
    language: LanguageTagger
    metrics: Metrics
    pipeline: Pipeline
    outbox: Outbox
    media_key: bytes = b""  # signs public links to stored media (gateway/media.py)
    actions_token: str = ""  # what Rasa must present at /actions/webhook (gateway/action_server.py)
    actions: ActionRunner | None = None  # the custom actions, once the app built them
    staff_sessions: StaffSessions | None = None  # staff logins (the inbox's), when the app has them
    # Readiness beyond the core's own (database, coordination, Rasa): each feature adds its check by name.
    readiness: dict[str, ReadinessCheck] = field(default_factory=dict)
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    intake: GatewayIntake = field(init=False)  # what channels' routes and workers call

    def __post_init__(self) -> None:
        self.intake = GatewayIntake(self.pipeline, self.outbox, self.coordination, self.metrics, self.spawn)

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

    def on_close(self, closer: Callable[[], Awaitable[None]]) -> None:
        """Close this too when the app stops (after the background tasks, before the core's own parts)."""
        self._closers.append(closer)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for closer in reversed(self._closers):
            try:
                await closer()
            except Exception as exc:  # one part failing to close must not keep the others open
                log.warning("close.failed", error=repr(exc))
        await self.outbox.close()
        await self.coordination.close()
        await self.http.aclose()
        await self.db.dispose()


async def build_core(settings: GatewaySettings, metrics: Metrics | None = None) -> dict[str, Any]:
    """The core's parts from settings, as keyword arguments for `Services` (or the app's subclass of it)."""
    db = Database(settings.effective_database_url)
    await db.migrate()
    coordination = build_coordination(settings.redis_url, settings.redis_key_prefix)
    http = httpx.AsyncClient(limits=httpx.Limits(max_connections=100, max_keepalive_connections=20))
    bot = RasaClient(settings.rasa_url, http, timeout_seconds=settings.rasa_timeout_seconds,
                     token=installation_secret(settings.data_dir, "rasa.key", settings.rasa_token))
    language = LanguageTagger()
    metrics = metrics or build_metrics()
    pipeline = Pipeline(db, coordination, bot, language, metrics)
    outbox = Outbox(db, coordination, metrics, {}, RetryPolicy(
        settings.outbox_max_attempts, settings.outbox_retry_base_seconds, settings.outbox_retry_max_seconds,
    ))
    return dict(
        settings=settings, db=db, coordination=coordination, http=http, bot=bot, language=language,
        metrics=metrics, pipeline=pipeline, outbox=outbox,
        media_key=media_key(settings.data_dir, settings.media_url_secret),
        actions_token=installation_secret(settings.data_dir, "actions.key", settings.actions_token),
    )


async def build_services(settings: GatewaySettings, metrics: Metrics | None = None) -> Services:
    """The core alone (tests of the core build it this way; the app builds its `AppServices`)."""
    return Services(**await build_core(settings, metrics))


def services_of(request: Request) -> Services:
    """FastAPI dependency: the app's services."""
    return request.app.state.services  # type: ignore[no-any-return]


def services_of_socket(websocket: WebSocket) -> Services:
    return websocket.app.state.services  # type: ignore[no-any-return]
