"""Assignment: the least-loaded online agent of the department with room left, else the department's queue;
transfers to an agent or a department; queue positions; the supervisor's figures."""

from __future__ import annotations

from sqlalchemy import select

from gateway.message import InboundMessage
from gateway.pipeline import Pipeline
from gateway.storage import Conversation, Database
from handoff.models import Handoff
from handoff.service import HandoffService, Staff
from tests.handoff.support import ScriptedBot

_counter = iter(range(1, 1_000_000))


async def hand_over(pipeline: Pipeline, bot: ScriptedBot, user: str) -> str:
    bot.slots = {"handoff_requested": True}
    outcome = await pipeline.handle(InboundMessage(channel="webchat", channel_account="default",
                                                   external_user_id=user, external_message_id=f"a{next(_counter)}",
                                                   text="转人工"))
    assert outcome.status == "pending"
    return outcome.conversation_id


async def assignee(db: Database, conversation_id: str) -> int | None:
    async with db.sessions() as session:
        row = await session.get(Handoff, conversation_id)
        return row.agent_id if row else None


async def test_least_loaded_online_agent_of_the_department(pipeline: Pipeline, bot: ScriptedBot,
                                                           handoff: HandoffService, database: Database) -> None:
    agents = handoff.agents
    busy = await agents.create("busy@bj.gov.cn", "password-1", "Busy", departments=["hotline"], capacity=3)
    idle = await agents.create("idle@bj.gov.cn", "password-1", "Idle", departments=["hotline"], capacity=1)
    away = await agents.create("away@bj.gov.cn", "password-1", "Away", departments=["hotline"], capacity=9)
    other = await agents.create("tax@bj.gov.cn", "password-1", "Tax", departments=["tax"], capacity=9)
    for agent in (busy, idle, other):
        await agents.update(agent.id, online=True)
    assert not away.online

    first = await hand_over(pipeline, bot, "c1")
    await handoff.claim(first, Staff(busy.id, "Busy"))  # busy now holds one open conversation
    second = await hand_over(pipeline, bot, "c2")
    assert await assignee(database, second) == idle.id  # least loaded (0 < 1); offline and other department skipped
    third = await hand_over(pipeline, bot, "c3")
    assert await assignee(database, third) == busy.id  # idle is at capacity (1 of 1)
    await agents.update(busy.id, capacity=2)
    fourth = await hand_over(pipeline, bot, "c4")
    assert await assignee(database, fourth) is None  # everyone full: waits in the queue
    waiting = await handoff.list(status=("pending",), unassigned=True)
    assert [w["id"] for w in waiting] == [fourth] and waiting[0]["waiting_seconds"] is not None

    # Transfers: to a department (back to its queue, assigned there), and to a named agent.
    await handoff.transfer(fourth, Staff(busy.id, "Busy"), department="tax")
    assert await assignee(database, fourth) == other.id
    await handoff.claim(fourth, Staff(other.id, "Tax"))
    await handoff.transfer(fourth, Staff(other.id, "Tax"), agent_id=away.id)
    async with database.sessions() as session:
        row = await session.get(Handoff, fourth)
        conversation = await session.get(Conversation, fourth)
    assert row is not None and conversation is not None
    assert (row.agent_id, row.department, conversation.status) == (away.id, "tax", "open")

    stats = await handoff.stats()
    per_agent = {a["name"]: a["open"] for a in stats["open_per_agent"]}
    assert per_agent["Busy"] == 1 and per_agent["Away"] == 1
    assert stats["waiting"] == 2 and stats["longest_wait_seconds"] is not None


async def test_queue_positions_count_earlier_waiters_of_the_department(
    pipeline: Pipeline, bot: ScriptedBot, handoff: HandoffService, database: Database
) -> None:
    await hand_over(pipeline, bot, "q1")
    await hand_over(pipeline, bot, "q2")
    bot.slots = {"handoff_requested": True}
    outcome = await pipeline.handle(InboundMessage(channel="webchat", channel_account="default",
                                                   external_user_id="q3", external_message_id="q3-1", text="转人工"))
    assert "第 3 位" in (outcome.replies[-1].text or "")
    listed = await handoff.list()
    assert [c["id"] for c in listed][0] == outcome.conversation_id  # newest activity first
    async with database.sessions() as session:
        assert len((await session.execute(select(Handoff))).scalars().all()) == 3
