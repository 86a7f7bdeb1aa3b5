"""Nothing may be lost or blocked for ever: a message the engine always fails on is set aside for a person after a
few tries (the conversation moves on); a notice that failed to be enqueued is tried again, never skipped; the
installation's keys are created whole even when several workers start at once."""

from __future__ import annotations

import multiprocessing
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.engine import BotTurn, BotUnavailable
from gateway.message import InboundMessage
from gateway.pipeline import DEAD_LETTER_TEXT, MAX_BOT_ATTEMPTS
from gateway.storage import Conversation, Message
from tests.crm_adapter.test_notices import DEPT, Channel, world
from tests.handoff.support import ADMIN_TOKEN, ScriptedBot, inbox_app, inbox_settings
from tests.support.keys_worker import read_race_key


class PoisonedBot(ScriptedBot):
    """Rasa is up (it answers /status) but fails on one message every time."""

    async def turn(self, sender: str, text: str, metadata: dict[str, Any]) -> BotTurn:
        if "poison" in text:
            self.calls.append(text)
            raise BotUnavailable("Rasa answered 500: the engine failed to handle the message")
        return await super().turn(sender, text, metadata)


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[Any]:
    async with inbox_app(inbox_settings(tmp_path)) as parts:
        _, services, _ = parts
        services.bot = services.pipeline.bot = PoisonedBot()
        yield parts


def inbound(text: str, number: int) -> InboundMessage:
    return InboundMessage(channel="webchat", channel_account="default", external_user_id="citizen-poison-1",
                          external_message_id=f"p{number}", text=text)


async def test_a_message_the_engine_always_fails_on_goes_to_a_person(app: Any) -> None:
    _, services, client = app
    pipeline = services.pipeline
    first = await pipeline.receive(inbound("poison pill", 1))
    second = await pipeline.receive(inbound("你好", 2))  # waits behind it, in order
    for _ in range(MAX_BOT_ATTEMPTS):  # what the retry worker does every RASA_RETRY_SECONDS
        await pipeline.process(first.conversation_id)
    # Tried a few times, then set aside; the next message is no longer held back (a person has the conversation
    # now, so it waits for them in the inbox instead of going to the bot).
    assert services.bot.calls == ["poison pill"] * MAX_BOT_ATTEMPTS
    async with services.db.sessions() as session:
        poisoned = await session.get(Message, first.message_id)
        later = await session.get(Message, second.message_id)
        conversation = await session.get(Conversation, first.conversation_id)
    assert poisoned is not None and poisoned.turn_state == "failed" and poisoned.payload["dead_letter"]["attempts"]
    assert later is not None and later.turn_state == "done"
    assert conversation is not None and conversation.status == "pending"  # agents see it in the inbox
    assert await pipeline.waiting_conversations() == []
    detail = (await client.get(f"/api/inbox/conversations/{first.conversation_id}",
                               headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})).json()
    failed = [h for h in detail["history"] if h.get("turn_state") == "failed"]
    assert [h["text"] for h in failed] == ["poison pill"]
    said = [h["text"] for h in detail["history"] if h["kind"] == "message" and h["from"] != "citizen"]
    assert DEAD_LETTER_TEXT["en"] in said  # "poison pill" is English: the citizen is told in English


async def test_while_rasa_is_down_a_turn_is_never_dead_lettered(app: Any) -> None:
    _, services, _ = app

    async def down() -> bool:
        return False

    services.bot.is_ready = down
    received = await services.pipeline.receive(inbound("poison while down", 3))
    for _ in range(MAX_BOT_ATTEMPTS + 2):
        await services.pipeline.process(received.conversation_id)
    async with services.db.sessions() as session:
        message = await session.get(Message, received.message_id)
    assert message is not None and message.turn_state == "deferred"


def test_installation_keys_are_created_whole_by_racing_workers(tmp_path: Path) -> None:
    for attempt in range(5):
        directory = tmp_path / f"run{attempt}"
        with multiprocessing.get_context("spawn").Pool(6) as pool:
            keys = pool.map(read_race_key, [str(directory)] * 12)
        assert len(set(keys)) == 1 and len(keys[0]) == 64, keys
        assert oct((directory / "race.key").stat().st_mode & 0o777) == "0o600"


async def test_a_failed_notice_is_tried_again_not_skipped(database: Any, clock: Any) -> None:
    """The notice's enqueue fails once (the database hiccups): the cursor stays before that change, and the next
    round tells the citizen; before the fix the cursor moved on and the citizen was never told."""
    sms = Channel("sms")
    w = await world(database, clock, sms)
    conversation = await w.say("sms", "路灯坏了")
    number = await w.file(conversation)
    await w.notify()
    sms.sent.clear()
    real = w.outbox.enqueue_proactive
    failures = [RuntimeError("database is locked")]

    async def flaky(*args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return await real(*args, **kwargs)

    w.outbox.enqueue_proactive = flaky  # type: ignore[method-assign]
    await w.service.update_status(number, "in_progress", DEPT)
    await w.notify()
    assert sms.sent == []
    await w.notify()
    assert [p["body"] for p in sms.sent] == [f"您的工单 {number} 正在由城市管理局处理中。"]
    await w.notify()
    assert len(sms.sent) == 1  # and only once
