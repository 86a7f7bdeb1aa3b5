"""The pipeline and its storage, against SQLite and the real PostgreSQL.

The bot here is a stand-in that records what it was asked (the real Rasa is exercised in tests/test_rest_channel.py);
everything else (database, migrations, coordination) is real.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.coordination import InProcessCoordination
from gateway.engine import BotTurn, BotUnavailable
from gateway.language import LanguageTagger
from gateway.message import InboundMessage
from gateway.metrics import build_metrics
from gateway.pipeline import Pipeline
from gateway.storage import Contact, Conversation, Database, Message


class RecordingBot:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.down = False
        self.slots: dict[str, Any] = {}

    async def turn(self, sender: str, text: str, metadata: dict[str, Any]) -> BotTurn:
        if self.down:
            raise BotUnavailable("connection refused")
        self.calls.append((sender, text, metadata))
        await asyncio.sleep(0.01)
        return BotTurn(
            messages=[{"recipient_id": sender, "text": f"echo:{text}", "buttons": [{"title": "A", "payload": "/a"}]}],
            intent="greet", confidence=0.9, slots_set=dict(self.slots),
        )

    async def is_ready(self) -> bool:
        return not self.down


@pytest.fixture
def bot() -> RecordingBot:
    return RecordingBot()


@pytest.fixture
def pipeline(database: Database, bot: RecordingBot) -> Pipeline:
    return Pipeline(database, InProcessCoordination(), bot, LanguageTagger(), build_metrics())  # type: ignore[arg-type]


def sms(text: str, ext: str | None, user: str = "+8613800000001") -> InboundMessage:
    return InboundMessage(channel="sms", channel_account="+10000000000", external_user_id=user,
                          external_message_id=ext, text=text)


async def count(db: Database, model: Any, *where: Any) -> int:
    async with db.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(model).where(*where))).scalar_one())


async def test_first_message_creates_contact_identity_conversation(pipeline: Pipeline, database: Database) -> None:
    first = await pipeline.receive(sms("你好", "SM1"))
    second = await pipeline.receive(sms("请问居住证怎么办", "SM2"))
    assert not first.duplicate and not second.duplicate
    assert first.conversation_id == second.conversation_id
    assert first.contact_id == second.contact_id
    assert await count(database, Contact) == 1
    assert await count(database, Message, Message.direction == "in") == 2
    other = await pipeline.receive(sms("hi", "SM3", user="+8613800000002"))
    assert other.conversation_id != first.conversation_id


async def test_redelivery_is_stored_once(pipeline: Pipeline, database: Database) -> None:
    results = await asyncio.gather(*(pipeline.receive(sms("路灯坏了", "SM-dup")) for _ in range(5)))
    assert sum(not r.duplicate for r in results) == 1
    assert len({r.message_id for r in results}) == 1
    assert await count(database, Message) == 1


async def test_turns_run_in_arrival_order_and_store_replies(
    pipeline: Pipeline, database: Database, bot: RecordingBot
) -> None:
    a = await pipeline.receive(sms("first", "o1"))
    await pipeline.receive(sms("second", "o2"))
    await pipeline.receive(sms("third", "o3"))
    # Three concurrent processors: the lock and the "oldest waiting first" rule keep the order.
    await asyncio.gather(*(pipeline.process(a.conversation_id) for _ in range(3)))
    assert [text for _, text, _ in bot.calls] == ["first", "second", "third"]
    history = await pipeline.history(a.conversation_id)
    assert [m.text for m in history if m.direction == "in"] == ["first", "second", "third"]
    assert [m.text for m in history if m.direction == "out"] == ["echo:first", "echo:second", "echo:third"]
    assert await count(database, Message, Message.turn_state == "done") == 3
    reply = [m for m in history if m.direction == "out"][0]
    assert reply.payload["buttons"] == [{"title": "A", "payload": "/a"}]
    assert reply.payload["meta"]["intent"] == "greet"


async def test_traditional_is_simplified_for_the_engine_and_kept(pipeline: Pipeline, bot: RecordingBot) -> None:
    received = await pipeline.receive(sms("身分證掉了怎麼辦", "t1"))
    await pipeline.process(received.conversation_id)
    _, text, metadata = bot.calls[0]
    assert text == "身分证掉了怎么办"
    assert metadata["original_text"] == "身分證掉了怎麼辦"
    assert metadata["language"] == "zh"
    english = await pipeline.receive(sms("How do I renew my ID card?", "t2"))
    await pipeline.process(english.conversation_id)
    assert bot.calls[1][2]["language"] == "en"


async def test_bot_down_keeps_the_turn_and_answers_later(
    pipeline: Pipeline, database: Database, bot: RecordingBot
) -> None:
    bot.down = True
    outcome = await pipeline.handle(sms("路灯坏了好几天了", "d1"))
    assert [m.sender for m in outcome.replies] == ["system"]
    second = await pipeline.handle(sms("还在吗", "d2"))
    assert second.replies == []  # the citizen is told once per outage, not per message
    assert await count(database, Message, Message.turn_state == "deferred") == 2
    assert await pipeline.waiting_conversations() == [outcome.conversation_id]
    bot.down = False
    await pipeline.process(outcome.conversation_id)
    assert [text for _, text, _ in bot.calls] == ["路灯坏了好几天了", "还在吗"]
    assert await count(database, Message, Message.turn_state == "deferred") == 0
    assert await pipeline.waiting_conversations() == []


async def test_handoff_makes_the_bot_quiet(pipeline: Pipeline, database: Database, bot: RecordingBot) -> None:
    bot.slots = {"handoff_requested": True}
    outcome = await pipeline.handle(sms("我要人工", "h1"))
    assert outcome.status == "pending"
    assert outcome.replies[0].payload["meta"]["conversation_status"] == "pending"
    bot.slots = {}
    later = await pipeline.handle(sms("有人吗", "h2"))
    assert later.replies == [] and later.status == "pending"
    assert len(bot.calls) == 1
    async with database.sessions() as session:
        conversation = await session.get(Conversation, outcome.conversation_id)
    assert conversation is not None and conversation.status == "pending"
