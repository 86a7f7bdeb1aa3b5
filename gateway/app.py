"""The app factory: builds the FastAPI app and everything it needs from settings."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from bot.actions import build_executor
from channels.email.poller import build_poller
from channels.rest import RestConnector
from channels.rest.routes import build_router as rest_router
from channels.sms.routes import build_router as sms_router
from channels.telegram.routes import build_router as telegram_router
from channels.webchat import WebchatConnector
from channels.webchat.routes import build_router as webchat_router
from channels.wechat.routes import build_router as wechat_router
from crm_adapter.api import router as work_orders_router
from gateway import action_server, health, media_routes
from gateway.bot_ports import KbFeedbackPort, WorkOrderPort
from gateway.http_guard import BodyLimit, HttpGuard, body_limit
from gateway.keys import installation_secret
from gateway.logs import configure_logging
from gateway.metrics import build_metrics
from gateway.outbox import build_push_channels, start_delivery
from gateway.services import build_services
from gateway.settings import Settings
from gateway.workers import retry_waiting_turns
from handoff import api as inbox_api
from handoff import pages as inbox_pages
from handoff.slack import SlackDesk
from handoff.slack import build_router as slack_router
from handoff.slack.actions import HandoffDeskActions
from handoff.wiring import build_handoff
from kb_retrieval import api as kb_api
from kb_retrieval.service import ActionSearch, KnowledgeService, KnowledgeSettings
from studio import routers as studio_routers

log = structlog.get_logger(__name__)


def body_limits(settings: Settings) -> list[BodyLimit]:
    """How large a body each kind of route takes (everything else: 1 MB)."""
    return [
        body_limit(r"^/channels/(sms|rest)/", 64 * 1024),  # a Twilio form post, a REST turn
        body_limit(r"^/channels/wechat/", 256 * 1024),  # WeChat's pushes are small XML documents
        body_limit(r"^/channels/(telegram|slack)/", 512 * 1024),
        body_limit(r"^/actions/webhook$", 16 * 1024 * 1024),  # Rasa sends the whole tracker (authenticated first)
        body_limit(r"^/api/inbox/conversations/[^/]+/attachments$", settings.media_max_bytes + 64 * 1024),
        body_limit(r"^/api/inbox/login$", 4 * 1024),
        body_limit(r"^/api/(studio|kb)/", 2 * 1024 * 1024),
    ]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.log_level, settings.log_json, settings.secret_values())
    metrics = build_metrics()
    push_channels = build_push_channels(settings)  # only channels whose settings are present

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await build_services(settings, metrics)
        app.state.services = services
        services.knowledge = KnowledgeService(
            KnowledgeSettings(settings.kb_path, settings.data_dir / "kb_index", settings.kb_embedding_model or None,
                              settings.kb_english_embedding_model),
            services.db, services.coordination, metrics.kb_search_seconds.observe,
        )
        # The index builds in the background: the gateway answers (and /readyz reports "loading") meanwhile.
        services.spawn(services.knowledge.load(), name="kb-load")
        services.actions = build_executor(
            ActionSearch(services.knowledge),
            work_orders=WorkOrderPort(services.work_orders), feedback=KbFeedbackPort(services.knowledge),
        )
        services.spawn(services.knowledge.follow_other_workers(), name="kb-follow")
        services.outbox = start_delivery(services, push_channels)
        services.handoff = await build_handoff(services)  # after delivery: its hooks see "1" mapped to a button
        if settings.slack_configured:  # Slack as a second desk: handoffs become threads there
            services.slack_desk = SlackDesk(
                token=settings.slack_bot_token, signing_secret=settings.slack_signing_secret,
                channel=settings.slack_handoff_channel, db=services.db, coordination=services.coordination,
                actions=HandoffDeskActions(services.handoff), api_base_url=settings.slack_api_base_url,
            )
            services.spawn(services.slack_desk.follow(), name="slack-desk")
        services.spawn(retry_waiting_turns(services), name="retry-waiting-turns")
        if push_channels.email is not None:  # e-mail has no webhook: a poller reads the mailbox (IDLE or polling)
            services.spawn(build_poller(services, push_channels.email).run(), name="email-poller")
        if services.work_orders is not None:
            # Citizens are told when their orders move (and asked for the 回访) through the outbox's proactive path.
            services.work_orders.notify_citizens(
                services.outbox, lock=lambda: services.coordination.lock("crm:notices", hold_seconds=120)
            )
            services.spawn(services.work_orders.run_background(), name="work-orders")
        log.info(
            "gateway.started", url=settings.base_url, database=settings.effective_database_url.split("://")[0],
            coordination="redis" if settings.redis_url else "in-process", rasa=settings.rasa_url,
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
    if settings.rest_channel_enabled:
        app.include_router(rest_router(RestConnector(settings.rest_channel_token, settings.rest_channel_trusted),
                                       settings.rest_channel_rate_per_minute))
    if settings.webchat_enabled:
        origins = tuple(o.strip() for o in settings.webchat_allowed_origins.split(",") if o.strip())
        session_key = installation_secret(settings.data_dir, "webchat-session.key", settings.webchat_session_secret)
        app.include_router(webchat_router(WebchatConnector(session_key.encode(), origins)))
    if push_channels.sms is not None:
        app.include_router(sms_router(push_channels.sms))
    if push_channels.telegram is not None:
        app.include_router(telegram_router(push_channels.telegram))
    if push_channels.wechat is not None:
        app.include_router(wechat_router(push_channels.wechat, settings.wechat_passive_reply_seconds))
    if settings.slack_configured:
        app.include_router(slack_router())
    app.include_router(media_routes.router)
    app.include_router(kb_api.router)
    app.include_router(work_orders_router)
    app.include_router(inbox_api.router)
    app.include_router(inbox_pages.router)
    for router in studio_routers:
        app.include_router(router)
    return app
