"""The app factory: the FastAPI app, its middleware and every route, and its life (services built at start-up,
background work started, everything closed at shutdown)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from app.services import AppServices, build_app_services
from app.settings import Settings
from app.workers import start_workers
from crm_adapter.api import router as work_orders_router
from gateway import action_server, health, media_routes
from gateway.http_guard import BodyLimit, HttpGuard, body_limit
from gateway.logs import configure_logging
from gateway.metrics import build_metrics
from handoff import api as inbox_api
from handoff import pages as inbox_pages
from handoff.slack import build_router as slack_router
from kb_retrieval import api as kb_api
from reports.api import router as reports_router
from reports.pages import router as reports_pages
from studio.api import router as studio_api
from studio.pages import router as studio_pages

log = structlog.get_logger(__name__)

# Channels' webhooks take small bodies; a channel not listed gets the default (1 MB).
CHANNEL_BODY_LIMITS = {"sms": 64 * 1024, "voice": 64 * 1024, "rest": 64 * 1024, "wechat": 256 * 1024,
                       "telegram": 512 * 1024}


def body_limits(settings: Any) -> list[BodyLimit]:
    """How large a body each kind of route takes (everything else: 1 MB)."""
    return [
        *(body_limit(f"^/channels/{name}/", size) for name, size in CHANNEL_BODY_LIMITS.items()),
        body_limit(r"^/channels/slack/", 512 * 1024),  # the agents' Slack desk
        body_limit(r"^/actions/webhook$", 16 * 1024 * 1024),  # Rasa sends the whole tracker (authenticated first)
        body_limit(r"^/api/inbox/conversations/[^/]+/attachments$", settings.media_max_bytes + 64 * 1024),
        body_limit(r"^/api/inbox/login$", 4 * 1024),
        body_limit(r"^/api/(studio|kb)/", 2 * 1024 * 1024),
    ]


def serve(app: FastAPI, services: AppServices) -> None:
    """Put the services into the app: the channels' routes (built with the services) join the others."""
    app.state.services = services
    for channel in services.channels.values():
        if channel.routes is not None:
            app.include_router(channel.routes)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.log_level, settings.log_json, settings.secret_values())
    metrics = build_metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await build_app_services(settings, metrics)
        serve(app, services)
        start_workers(services)
        log.info(
            "gateway.started", url=settings.base_url, database=settings.effective_database_url.split("://")[0],
            coordination="redis" if settings.redis_url else "in-process", rasa=settings.rasa_url,
            channels=sorted(services.channels),
        )
        try:
            yield
        finally:
            await services.close()
            log.info("gateway.stopped")

    app = FastAPI(
        title="Binjiang citizen-service gateway",
        version="0.1.0",
        description="Channels, the Rasa dialogue engine, the knowledge base, handoff and work orders.",
        lifespan=lifespan,
    )

    # Size limits before any body is read, security headers, and access logs without query strings.
    app.add_middleware(HttpGuard, limits=body_limits(settings))

    @app.middleware("http")
    async def observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        metrics.http_requests.labels(path, request.method, str(response.status_code)).inc()
        metrics.http_request_seconds.labels(path).observe(time.perf_counter() - started)
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # A clear reason for each bad field, never the request body echoed back (it may hold personal data).
        problems = [
            {"field": ".".join(str(p) for p in err.get("loc", ())), "problem": err.get("msg", "invalid")}
            for err in exc.errors()
        ]
        return JSONResponse({"detail": "invalid request", "problems": problems}, status_code=422)

    app.include_router(health.router)
    app.include_router(action_server.router)
    if settings.slack_configured:
        app.include_router(slack_router())
    app.include_router(media_routes.router)
    app.include_router(kb_api.router)
    app.include_router(work_orders_router)
    app.include_router(reports_router)
    app.include_router(reports_pages)
    app.include_router(inbox_api.router)
    app.include_router(inbox_pages.router)
    app.include_router(studio_api)
    app.include_router(studio_pages)
    return app
