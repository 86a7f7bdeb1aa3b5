"""The conversation's status machine and the survey, driven through the real pipeline (scripted bot) on SQLite and
PostgreSQL: request_human and two not-understood turns hand over, the bot stays quiet while a person has the
conversation, every change is an event, the survey answer never reaches the bot."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.calendar import WorkingCalendar
from gateway.coordination import InProcessCoordination
from gateway.message import InboundMessage, OutboundMessage
from gateway.pipeline import Pipeline
from gateway.storage import Conversation, Database, Message
from handoff import texts
from handoff.agents import AgentStore
from handoff.models import ConversationEvent, CsatScore, Handoff
from handoff.service import HandoffConflict, HandoffService, HandoffSettings, Staff
from handoff.triggers import survey_score
from tests.handoff.support import ScriptedBot

_counter = iter(range(1, 1_000_000))


def chat(text: str, user: str = "citizen-1", reply_payload: str | None = None) -> InboundMessage:
    return InboundMessage(channel="webchat", channel_account="default", external_user_id=user,
                          external_message_id=f"m{next(_counter)}", text=text, reply_payload=reply_payload)


async def turn(pipeline: Pipeline, text: str, **kw: str) -> tuple[str, list[Message]]:
    outcome = await pipeline.handle(chat(text, **kw))
    return outcome.status, outcome.replies


async def events(db: Database, conversation_id: str, kind: str = "status") -> list[tuple[str | None, str | None, str]]:
    async with db.sessions() as session:
        rows = (await session.execute(
            select(ConversationEvent).where(ConversationEvent.conversation_id == conversation_id,
                                            ConversationEvent.kind == kind).order_by(ConversationEvent.id)
        )).scalars()
        return [(e.from_status, e.to_status, e.actor) for e in rows]


async def conversation_of(db: Database) -> Conversation:
    async with db.sessions() as session:
        return (await session.execute(select(Conversation))).scalar_one()


async def test_request_human_queues_and_the_bot_stays_quiet(pipeline: Pipeline, bot: ScriptedBot,
                                                            handoff: HandoffService, database: Database) -> None:
    status, _ = await turn(pipeline, "你好")
    assert status == "bot"
    bot.intent, bot.slots = "request_human", {"handoff_requested": True}
    status, replies = await turn(pipeline, "转人工")
    assert status == "pending"
    # The REST channel's meta reports the status after the turn, and the queue notice is part of the answer.
    assert [r.payload["meta"]["conversation_status"] for r in replies] == ["pending", "pending"]
    assert replies[-1].sender == "system" and "第 1 位" in (replies[-1].text or "")
    conversation = await conversation_of(database)
    assert await events(database, conversation.id) == [("bot", "pending", "bot")]

    calls = len(bot.calls)
    status, replies = await turn(pipeline, "有人吗")
    assert (status, replies, len(bot.calls)) == ("pending", [], calls)  # nothing said, bot not asked
    async with database.sessions() as session:
        assert (await session.get(Handoff, conversation.id)).unread == 1  # type: ignore[union-attr]


async def test_two_not_understood_turns_in_a_row_hand_over(pipeline: Pipeline, bot: ScriptedBot,
                                                           handoff: HandoffService, database: Database) -> None:
    bot.intent, bot.confidence = "nlu_fallback", 0.2
    assert (await turn(pipeline, "啊啊啊"))[0] == "bot"
    bot.intent, bot.confidence = "greet", 0.95
    assert (await turn(pipeline, "你好"))[0] == "bot"  # understood: the streak is broken
    bot.intent, bot.confidence = "ask_question", 0.1  # low confidence counts as not understood
    assert (await turn(pipeline, "嗯嗯"))[0] == "bot"
    bot.intent, bot.confidence = "out_of_scope", 0.9
    status, replies = await turn(pipeline, "呃")
    assert status == "pending" and "排在第" in (replies[-1].text or "")
    conversation = await conversation_of(database)
    async with database.sessions() as session:
        reason = (await session.execute(select(ConversationEvent.reason).where(
            ConversationEvent.conversation_id == conversation.id))).scalar_one()
    assert "twice" in (reason or "")


async def test_an_unsure_turn_the_knowledge_base_answered_counts_as_understood(
        pipeline: Pipeline, bot: ScriptedBot, handoff: HandoffService) -> None:
    bot.intent, bot.confidence = "nlu_fallback", 0.2
    bot.slots = {"kb_article_ids": ["kb-housing-003"]}  # the KB answered the question the NLU could not place
    assert (await turn(pipeline, "楼顶漏水想用维修基金"))[0] == "bot"
    bot.intent, bot.confidence, bot.slots = "out_of_scope", 0.9, {"kb_article_ids": []}
    assert (await turn(pipeline, "讲个笑话"))[0] == "bot"  # the first miss in a row
    assert (await turn(pipeline, "再讲一个"))[0] == "pending"


async def test_claim_reply_resolve_survey_and_back_to_bot(pipeline: Pipeline, bot: ScriptedBot,
                                                         handoff: HandoffService, database: Database) -> None:
    agent = await handoff.agents.create("li@binjiang.gov.cn", "password-li", "李娜", departments=["hotline"])
    staff = Staff(agent.id, agent.name)
    bot.slots = {"handoff_requested": True}
    await turn(pipeline, "I want to talk to a person")
    conversation = await conversation_of(database)
    await handoff.claim(conversation.id, staff)
    reply = await handoff.reply(conversation.id, staff, OutboundMessage(text="您好，我是李娜"))
    assert (reply.sender, reply.direction, reply.delivery_state) == ("agent", "out", "sent")
    await handoff.note(conversation.id, staff, "citizen seems upset")
    calls = len(bot.calls)
    assert (await turn(pipeline, "谢谢"))[1] == []  # open: still quiet
    await handoff.resolve(conversation.id, staff)
    history = await pipeline.history(conversation.id)
    survey = history[-1]
    assert survey.payload["buttons"][4] == {"title": "5", "payload": "csat:5"}

    status, replies = await turn(pipeline, "5")
    assert status == "bot" and "5" in (replies[0].text or "")
    assert len(bot.calls) == calls  # the survey answer never reached the bot
    async with database.sessions() as session:
        scores = (await session.execute(select(CsatScore.score, CsatScore.agent_id))).all()
    assert scores == [(5, agent.id)]
    registry = pipeline.metrics.registry
    assert registry.get_sample_value("gateway_handoffs_total", {"trigger": "request_human"}) == 1
    assert registry.get_sample_value("gateway_csat_scores_total", {"score": "5"}) == 1
    assert registry.get_sample_value("gateway_handoff_wait_seconds_count") == 1
    assert await events(database, conversation.id) == [
        ("bot", "pending", "bot"), ("pending", "open", f"agent:{agent.id}"),
        ("open", "resolved", f"agent:{agent.id}"), ("resolved", "bot", "citizen"),
    ]
    assert len(await events(database, conversation.id, "note")) == 1
    status, replies = await turn(pipeline, "再问一个问题")
    assert status == "bot" and replies[0].text == "bot:再问一个问题"  # the bot is back
    detail = await handoff.detail(conversation.id)
    kinds = [item["kind"] for item in detail["history"]]
    assert "note" in kinds and "csat" in kinds and kinds.count("status") == 4


async def test_hand_back_and_taking_a_conversation_from_the_bot(pipeline: Pipeline, bot: ScriptedBot,
                                                                handoff: HandoffService, database: Database) -> None:
    agent = await handoff.agents.create("wang@binjiang.gov.cn", "password-wang", "王强")
    await turn(pipeline, "你好")
    conversation = await conversation_of(database)
    await handoff.claim(conversation.id, Staff(agent.id, agent.name))  # taken from the live list
    assert (await conversation_of(database)).status == "open"
    await handoff.hand_back(conversation.id, Staff(agent.id, agent.name))
    status, replies = await turn(pipeline, "还在吗")
    assert status == "bot" and replies[0].text == "bot:还在吗"
    assert await events(database, conversation.id) == [
        ("bot", "open", f"agent:{agent.id}"), ("open", "bot", f"agent:{agent.id}")
    ]
    with pytest.raises(HandoffConflict):
        await handoff.resolve(conversation.id, Staff(agent.id, agent.name))  # nothing to resolve


async def test_two_agents_claim_at_once_one_wins(pipeline: Pipeline, bot: ScriptedBot, handoff: HandoffService,
                                                 database: Database) -> None:
    bot.slots = {"handoff_requested": True}
    await turn(pipeline, "转人工")
    conversation = await conversation_of(database)
    a = await handoff.agents.create("a@binjiang.gov.cn", "password-a", "A")
    b = await handoff.agents.create("b@binjiang.gov.cn", "password-b", "B")
    # Two workers that share nothing but the database: only the conditional UPDATE decides.
    other = HandoffService(database, InProcessCoordination(), pipeline, handoff.agents, handoff.hours)
    results = await asyncio.gather(
        handoff.claim(conversation.id, Staff(a.id, "A")), other.claim(conversation.id, Staff(b.id, "B")),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["HandoffConflict", "NoneType"]
    winner = a.id if results[0] is None else b.id
    async with database.sessions() as session:
        assert (await session.get(Handoff, conversation.id)).agent_id == winner  # type: ignore[union-attr]
    assert [e for e in await events(database, conversation.id) if e[1] == "open"] == [
        ("pending", "open", f"agent:{winner}")
    ]


async def test_outside_hours_the_citizen_may_leave_a_message_or_file_a_work_order(
    pipeline: Pipeline, bot: ScriptedBot, handoff: HandoffService, database: Database
) -> None:
    handoff.hours = WorkingCalendar.parse("mon-fri 08:30-17:30", "Asia/Shanghai")
    handoff.clock = lambda: datetime(2026, 11, 22, 2, 0, tzinfo=UTC)  # Sunday 10:00 in Binjiang
    bot.slots = {"handoff_requested": True}
    status, replies = await turn(pipeline, "转人工")
    assert status == "pending"
    closed = replies[-1]
    assert "11月23日 08:30" in (closed.text or "")  # Monday morning, centre time
    assert [b["payload"] for b in closed.payload["buttons"]] == [texts.LEAVE_MESSAGE, texts.FILE_WORK_ORDER]
    status, replies = await turn(pipeline, "留言", reply_payload=texts.LEAVE_MESSAGE)
    assert status == "pending" and "留言" in (replies[0].text or "")
    status, replies = await turn(pipeline, "提交工单", reply_payload=texts.FILE_WORK_ORDER)
    assert status == "bot" and bot.calls[-1] == texts.WORK_ORDER_INTENT


async def test_a_long_wait_is_announced_once(pipeline: Pipeline, bot: ScriptedBot, handoff: HandoffService,
                                             database: Database) -> None:
    bot.slots = {"handoff_requested": True}
    await turn(pipeline, "转人工")
    conversation = await conversation_of(database)
    assert await handoff.send_wait_notices() == 0  # not yet
    later = datetime.now(UTC).replace(year=datetime.now(UTC).year + 1)
    handoff.clock = lambda: later
    assert await handoff.send_wait_notices() == 1
    assert await handoff.send_wait_notices() == 0
    last = (await pipeline.history(conversation.id))[-1]
    assert last.sender == "system" and "耐心等待" in (last.text or "")


def test_survey_answers() -> None:
    assert [survey_score(t) for t in ("csat:3", "5", "5分", "五", "4 ", "6", "好", "csat:9")] == [
        3, 5, 5, 5, 4, None, None, None
    ]


async def test_a_second_handoff_starts_fresh(pipeline: Pipeline, bot: ScriptedBot, handoff: HandoffService,
                                             database: Database) -> None:
    agent = await handoff.agents.create("zhao@binjiang.gov.cn", "password-zhao", "赵")
    bot.slots = {"handoff_requested": True}
    await turn(pipeline, "转人工")
    conversation = await conversation_of(database)
    await handoff.claim(conversation.id, Staff(agent.id, "赵"))
    await handoff.resolve(conversation.id, Staff(agent.id, "赵"))
    await turn(pipeline, "还有一个问题")  # not a survey answer: goes to the bot, survey dropped
    bot.slots = {"handoff_requested": True}
    status, _ = await turn(pipeline, "转人工")
    assert status == "pending"
    async with database.sessions() as session:
        row = await session.get(Handoff, conversation.id)
        assert row is not None and row.agent_id is None and row.survey is None
        assert (await session.execute(select(func.count()).select_from(CsatScore))).scalar_one() == 0


async def test_storage_is_shared_with_a_fresh_store(database: Database) -> None:
    store = AgentStore(database)
    await store.create("x@binjiang.gov.cn", "password-x", "X")
    assert await store.authenticate("X@binjiang.gov.cn ", "password-x") is not None
    assert await store.authenticate("x@binjiang.gov.cn", "wrong-password") is None
    assert await store.authenticate("nobody@binjiang.gov.cn", "password-x") is None


def test_settings_default_department() -> None:
    assert HandoffSettings().default_department == "hotline"


async def test_an_urgent_report_is_put_through_to_a_person(pipeline: Pipeline, bot: ScriptedBot,
                                                           handoff: HandoffService, database: Database,
                                                           tmp_path: Path) -> None:
    from app.settings import Settings
    from crm_adapter.service import FileRequest, build_work_orders

    handoff.work_orders = await build_work_orders(Settings(_env_file=None, data_dir=tmp_path), database)  # type: ignore[call-arg]
    await turn(pipeline, "我要反映问题")
    conversation = await conversation_of(database)

    async def filed(description: str) -> str:
        result = await handoff.work_orders.file(FileRequest(  # type: ignore[union-attr]
            category="report", description=description, contact_id=conversation.contact_id, channel="webchat",
            conversation_id=conversation.id, location="滨江路12号"))
        return result.order.number

    # An ordinary report stays with the bot; one naming a danger to people is urgent and goes to a person at once.
    bot.slots = {"work_order_id": await filed("路灯坏了好几天了")}
    assert (await turn(pipeline, "是的，提交"))[0] == "bot"
    number = await filed("小区门口燃气泄漏，味道很大")
    order = await handoff.work_orders.get(number)  # type: ignore[union-attr]
    assert order.priority == "urgent"
    # The gas leak is the utilities' (routing.yml): the handoff waits in their queue, as someone works for them.
    await handoff.agents.create("gas@binjiang.gov.cn", "gas-desk-pass", "燃气值班", departments=["utilities"])
    bot.slots = {"work_order_id": number}
    status, replies = await turn(pipeline, "是的，提交")
    assert status == "pending" and "排在第" in (replies[-1].text or "")
    async with database.sessions() as session:
        assert (await session.get(Handoff, conversation.id)).department == "utilities"  # type: ignore[union-attr]
    async with database.sessions() as session:
        reasons = (await session.execute(select(ConversationEvent.reason).where(
            ConversationEvent.conversation_id == conversation.id))).scalars().all()
    assert any("urgent" in (r or "") for r in reasons)
