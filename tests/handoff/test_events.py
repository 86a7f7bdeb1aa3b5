"""Events for the inbox sockets and other desks go through the coordination pub/sub: the same through Redis (several
workers) as in-process."""

from __future__ import annotations

import pytest

from gateway.calendar import WorkingCalendar
from gateway.coordination import RedisCoordination
from gateway.language import LanguageTagger
from gateway.message import InboundMessage
from gateway.metrics import build_metrics
from gateway.pipeline import Pipeline
from gateway.storage import Database
from handoff.agents import AgentStore
from handoff.service import HandoffService, Staff
from tests.conftest import REDIS_URL
from tests.handoff.support import ScriptedBot

pytestmark = pytest.mark.redis


async def test_status_and_activity_events_reach_a_subscriber_through_redis(database: Database,
                                                                          redis_prefix: str) -> None:
    coordination = RedisCoordination(REDIS_URL, key_prefix=redis_prefix)
    bot = ScriptedBot()
    pipeline = Pipeline(database, coordination, bot, LanguageTagger(), build_metrics())  # type: ignore[arg-type]
    handoff = HandoffService(database, coordination, pipeline, AgentStore(database), WorkingCalendar.parse("24x7"))
    pipeline.use(before=[handoff.before_turn], after=[handoff.after_turn])  # as app/hooks.py places them
    agent = await handoff.agents.create("r@bj.gov.cn", "password-r", "R")
    try:
        async with coordination.subscribe("inbox") as inbox:
            bot.slots = {"handoff_requested": True}
            outcome = await pipeline.handle(InboundMessage(channel="webchat", channel_account="default",
                                                           external_user_id="redis-1", external_message_id="r1",
                                                           text="转人工"))
            await handoff.claim(outcome.conversation_id, Staff(agent.id, "R"))
            seen = []
            while True:
                event = await inbox.get(timeout=5)
                assert event is not None, f"events stopped after {seen}"
                seen.append((event["type"], event.get("status")))
                if event["type"] == "status" and event.get("status") == "open":
                    break
        assert seen == [("activity", "bot"), ("status", "pending"), ("status", "open")]
    finally:
        await coordination.close()
