"""Builds the handoff service from settings and hooks it into the pipeline (called from the app's start-up)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from handoff.agents import AgentStore
from handoff.hours import ServiceHours
from handoff.service import HandoffService, HandoffSettings

if TYPE_CHECKING:
    from gateway.services import Services

log = structlog.get_logger(__name__)


async def build_handoff(services: Services) -> HandoffService:
    """The service, installed in the pipeline (after the delivery hooks, so "1" already maps to a button), the first
    admin created when settings name one, the wait-notice loop started."""
    settings = services.settings
    handoff = HandoffService(
        services.db, services.coordination, services.pipeline,
        AgentStore(services.db, settings.inbox_session_hours),
        ServiceHours.parse(settings.service_hours, settings.service_timezone),
        HandoffSettings(settings.handoff_default_department, settings.handoff_wait_notice_seconds,
                        settings.handoff_fallback_confidence),
        services.work_orders,
    )
    handoff.install()
    created = await handoff.agents.ensure_first_admin(settings.inbox_admin_email, settings.inbox_admin_password)
    if created is not None:
        log.info("inbox.first_admin_created", email=created.email)
    services.spawn(handoff.run_background(), name="handoff-wait-notices")
    return handoff
