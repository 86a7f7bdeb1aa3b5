"""What the app runs on, built from settings: the core's services, the channels whose settings are present, and the
features on top (knowledge base, work orders, handoff and its Slack desk, the bot's custom actions), wired into
the turn by app/hooks.py. No globals: the factory builds one `AppServices` per app and passes it down.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import structlog

from app.dispatch import DispatchClassifier
from app.hooks import wire_turns
from app.phrases import speech_phrases
from app.ports import ActionSearch, KbFeedbackPort, WorkOrderPort
from bot.actions import build_executor
from channels import plugins
from crm_adapter.service import WorkOrderService, build_work_orders
from gateway.calendar import WorkingCalendar
from gateway.connectors import BuiltChannel, ChannelParts, PushConnector
from gateway.media import MediaStore
from gateway.metrics import Metrics
from gateway.services import ReadinessCheck, Services, build_core
from handoff.agents import AgentStore
from handoff.service import HandoffService, HandoffSettings
from handoff.slack import SlackDesk
from handoff.slack.actions import HandoffDeskActions
from kb_retrieval.service import KnowledgeService, KnowledgeSettings

log = structlog.get_logger(__name__)


@dataclass
class AppServices(Services):
    """The core's services and the features'; `settings` is the app's combined Settings."""

    channels: dict[str, BuiltChannel] = field(default_factory=dict)  # the channels served, by name
    knowledge: KnowledgeService | None = None
    work_orders: WorkOrderService | None = None
    handoff: HandoffService | None = None
    slack_desk: SlackDesk | None = None


async def build_app_services(settings: Any, metrics: Metrics | None = None) -> AppServices:
    """Everything but the background work (app/workers.py starts that once the app runs)."""
    services = AppServices(**await build_core(settings, metrics))
    services.channels = build_channels(settings, services)
    services.knowledge = KnowledgeService(
        KnowledgeSettings(settings.kb_path, settings.data_dir / "kb_index", settings.kb_embedding_model or None,
                          settings.kb_english_embedding_model),
        services.db, services.coordination, services.metrics.kb_search_seconds.observe,
    )
    knowledge = services.knowledge

    async def knowledge_ready() -> str:  # the gateway answers while the index builds; /readyz says "loading"
        return "ok" if knowledge.ready else "loading"

    services.readiness["knowledge_base"] = ReadinessCheck(knowledge_ready)
    services.work_orders = await build_work_orders(settings, services.db, http=services.http)
    if services.work_orders is not None:
        # Routing hears what a report is about (app/dispatch.py), not only which words appear in it.
        services.work_orders.classifier = DispatchClassifier(knowledge, services.db)
        services.on_close(services.work_orders.close)
        # Citizens are told when their orders move (and asked for the 回访) through the outbox's proactive path.
        services.work_orders.notify_citizens(
            services.outbox, lock=lambda: services.coordination.lock("crm:notices", hold_seconds=120)
        )
    services.handoff = await build_handoff(settings, services)
    services.staff_sessions = services.handoff.agents
    if settings.slack_configured:  # Slack as a second desk: handoffs become threads there
        services.slack_desk = desk = SlackDesk(
            token=settings.slack_bot_token, signing_secret=settings.slack_signing_secret,
            channel=settings.slack_handoff_channel, db=services.db, coordination=services.coordination,
            actions=HandoffDeskActions(services.handoff), api_base_url=settings.slack_api_base_url,
        )
        services.on_close(desk.close)

        async def slack_state() -> str:  # reported, never a reason to be unready: citizens are still served
            return desk.state

        services.readiness["slack"] = ReadinessCheck(slack_state, required=False)
    services.actions = build_executor(
        ActionSearch(services.knowledge),
        work_orders=WorkOrderPort(services.work_orders), feedback=KbFeedbackPort(services.knowledge),
    )
    wire_turns(services.pipeline, services.db, services.outbox, services.channels,
               MediaStore(settings.data_dir, settings.media_max_bytes), services.handoff)
    return services


def build_channels(settings: Any, services: Services) -> dict[str, BuiltChannel]:
    """Every channel whose settings are present, and the outbox told which of them it delivers for."""
    parts = ChannelParts(
        coordination=services.coordination, http=services.http, db=services.db, intake=services.intake,
        data_dir=settings.data_dir, base_url=settings.base_url, media_max_bytes=settings.media_max_bytes,
        service_hours=WorkingCalendar.parse(settings.service_hours, settings.service_timezone),
        # The knowledge base is built after the channels: read when a phrase is needed.
        phrases=speech_phrases(lambda: getattr(services, "knowledge", None),
                               settings.studio_project_dir / "data" / "nlu"),
    )
    built = {plugin.name: channel for plugin in plugins() if (channel := plugin.build(settings, parts)) is not None}
    outbox = services.outbox
    for name, channel in built.items():
        if channel.connector.capabilities.push and isinstance(channel.connector, PushConnector):
            outbox.connectors[name] = channel.connector
        if channel.deliverer is not None:
            outbox.deliverers[name] = channel.deliverer
        for closer in channel.closers:
            services.on_close(closer)
    outbox.stored_channels = frozenset(name for name in built if name not in outbox.connectors)
    return built


async def build_handoff(settings: Any, services: AppServices) -> HandoffService:
    """People take over: the status machine, agents, service hours; the first admin when settings name one."""
    handoff = HandoffService(
        services.db, services.coordination, services.pipeline,
        AgentStore(services.db, settings.inbox_session_hours),
        WorkingCalendar.parse(settings.service_hours, settings.service_timezone),
        HandoffSettings(settings.handoff_default_department, settings.handoff_wait_notice_seconds,
                        settings.handoff_fallback_confidence),
        services.work_orders,
    )
    created = await handoff.agents.ensure_first_admin(settings.inbox_admin_email, settings.inbox_admin_password)
    if created is not None:
        log.info("inbox.first_admin_created", agent_id=created.id)
    return handoff
