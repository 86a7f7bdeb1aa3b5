"""Background work in the gateway process: answering turns that waited for Rasa or were left by a crash."""

from __future__ import annotations

import asyncio

import structlog

from gateway.services import Services

log = structlog.get_logger(__name__)

# A turn left in "received" this long is taken to be orphaned by a crashed worker (live turns finish far sooner).
ORPHAN_AFTER_SECONDS = 30.0


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
