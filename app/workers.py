"""The background work of a gateway process, started once the app runs and stopped with it:

- the knowledge base's index (built, then kept in step with other workers' edits);
- the outbox (delivery with retries);
- the turns that waited for Rasa or were left by a crash;
- each channel's own (the e-mail poller);
- the work orders' (SLA timers, notices, the RT sync, the dispatch classifier's examples), the handoff's wait
  notices, the Slack desk's thread sync.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import structlog

from app.dispatch import DispatchClassifier
from gateway.services import Services
from kb_retrieval.service import KnowledgeLoading, KnowledgeService

if TYPE_CHECKING:
    from app.services import AppServices

log = structlog.get_logger(__name__)

# A turn left in "received" this long is taken to be orphaned by a crashed worker (live turns finish far sooner).
ORPHAN_AFTER_SECONDS = 30.0


def start_workers(services: AppServices) -> None:
    if services.knowledge is not None:
        services.spawn(services.knowledge.load(), name="kb-load")  # /readyz says "loading" meanwhile
        services.spawn(services.knowledge.follow_other_workers(), name="kb-follow")
    if services.outbox.connectors:
        services.spawn(services.outbox.run(), name="outbox")
    services.spawn(retry_waiting_turns(services), name="retry-waiting-turns")
    for channel in services.channels.values():
        for name, worker in channel.workers:
            services.spawn(worker(), name=name)
    if services.work_orders is not None:
        services.spawn(services.work_orders.run_background(), name="work-orders")
        if isinstance(services.work_orders.classifier, DispatchClassifier) and services.knowledge is not None:
            services.spawn(warm_dispatch(services.knowledge, services.work_orders.classifier), name="dispatch-warm")
    if services.handoff is not None:
        services.spawn(services.handoff.run_background(), name="handoff-wait-notices")
    if services.slack_desk is not None:
        services.spawn(services.slack_desk.follow(), name="slack-desk")


async def warm_dispatch(knowledge: KnowledgeService, classifier: DispatchClassifier) -> None:
    """The dispatch classifier's written reports, embedded once the knowledge base's model is loaded, so the first
    reports of the day are routed with them too."""
    while True:
        try:
            await knowledge.wait_ready(3600.0)
            break
        except KnowledgeLoading:
            continue  # a large knowledge base still building: keep waiting
    await classifier.wait_loaded()


async def retry_waiting_turns(services: Services) -> None:
    """Forever: when Rasa is reachable, process conversations with waiting turns, oldest first."""
    interval = services.settings.rasa_retry_seconds
    first = True
    while True:
        try:
            # On start, everything left over is an orphan of the previous process.
            waiting = await services.pipeline.waiting_conversations(0.0 if first else ORPHAN_AFTER_SECONDS)
            if waiting and await services.bot.is_ready():
                first = False
                log.info("turns.retry", conversations=len(waiting))
                for conversation_id in waiting:
                    await services.pipeline.process(conversation_id)
            elif not waiting:
                first = False
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # keep the worker alive; the next round retries
            log.error("turns.retry_failed", error=repr(exc))
        await asyncio.sleep(interval)
