"""The Telegram channel against a stand-in of the Bot API (aiogram 3 on our side, pointed at it as a custom
TelegramAPIServer) and a stand-in Rasa, on an in-process gateway with its real database and outbox."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from channels.telegram.set_webhook import register
from gateway.contacts import ContactMerge
from gateway.optouts import may_send_proactive
from gateway.storage import ChannelIdentity, Contact, Conversation, Message
from tests.channels.support import (
    BUTTONS,
    TG_SECRET,
    Gateway,
    StandInRasa,
    StandInTelegram,
    StandInTwilio,
    gateway_settings,
    running_gateway,
    sms_form,
    telegram_update,
)

CHAT = 5011223344


@pytest.fixture
async def telegram() -> AsyncIterator[StandInTelegram]:
    server = await StandInTelegram().start()
    yield server
    await server.stop()


@pytest.fixture
async def gateway(tmp_path: Path, rasa: StandInRasa, telegram: StandInTelegram) -> AsyncIterator[Gateway]:
    async with running_gateway(gateway_settings(tmp_path, rasa, telegram=telegram)) as gw:
        yield gw


async def count(gw: Gateway, model: type, *where: object) -> int:
    async with gw.db.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(model).where(*where))).scalar_one())


async def test_a_message_is_answered_and_the_secret_is_checked(gateway: Gateway, telegram: StandInTelegram,
                                                               rasa: StandInRasa) -> None:
    assert (await gateway.post_telegram(telegram_update("message_text"), secret=None)).status_code == 403
    assert (await gateway.post_telegram(telegram_update("message_text"), secret="wrong")).status_code == 403
    assert await count(gateway, Message) == 0
    response = await gateway.post_telegram(telegram_update("message_text"))
    assert response.status_code == 200
    await gateway.settle()
    assert rasa.texts() == ["你好"]
    [sent] = telegram.sent("sendMessage")
    assert sent["chat_id"] == str(CHAT) and sent["text"] == "echo:你好"
    async with gateway.db.sessions() as session:
        contact = (await session.execute(select(Contact))).scalar_one()
    assert contact.display_name == "小明 王"


async def test_the_same_update_three_times_is_answered_once(gateway: Gateway, telegram: StandInTelegram) -> None:
    update = telegram_update("message_text", update_id=900001)
    results = await asyncio.gather(*(gateway.post_telegram(update) for _ in range(3)))
    assert {r.status_code for r in results} == {200}
    await gateway.settle()
    assert len(telegram.sent("sendMessage")) == 1


async def test_buttons_are_an_inline_keyboard_and_a_press_is_answered_and_mapped(
    gateway: Gateway, telegram: StandInTelegram, rasa: StandInRasa
) -> None:
    await gateway.post_telegram(telegram_update("message_text", update_id=1, text="选项"))
    await gateway.settle()
    [sent] = telegram.sent("sendMessage")
    keyboard = json.loads(sent["reply_markup"])["inline_keyboard"]
    assert [[b["text"], b["callback_data"]] for [b] in keyboard] == [[b["title"], b["payload"]] for b in BUTTONS]
    await gateway.post_telegram(telegram_update("callback_query", update_id=2))
    await gateway.settle()
    assert rasa.texts() == ["选项", "/report_streetlight"]
    assert telegram.sent("answerCallbackQuery")[0]["callback_query_id"] == "4382109482390482301"


async def test_start_with_a_deep_link_greets_and_carries_the_parameter(gateway: Gateway, rasa: StandInRasa) -> None:
    await gateway.post_telegram(telegram_update("start_deeplink"))
    await gateway.settle()
    assert rasa.texts() == ["/greet"]
    async with gateway.db.sessions() as session:
        stored = (await session.execute(select(Message).where(Message.direction == "in"))).scalar_one()
    assert stored.payload["metadata"]["start_parameter"] == "wo-BJ-20261123-0007"


async def test_photo_voice_document_and_location_are_kept(gateway: Gateway, telegram: StandInTelegram,
                                                          rasa: StandInRasa, tmp_path: Path) -> None:
    for name in ("photo", "voice", "document", "location"):
        assert (await gateway.post_telegram(telegram_update(name))).status_code == 200
    await gateway.settle()
    photo, voice, document, location = (c["metadata"] for c in rasa.calls)
    [image] = photo["attachments"]
    assert image["kind"] == "image" and image["ref"].startswith("media/")
    assert (tmp_path / image["ref"]).read_bytes()[:3] == b"\xff\xd8\xff"
    assert {p["file_id"] for p in telegram.sent("getFile")} >= {"AgACAgUAAxkBAAIBlarge"}  # the biggest size
    assert rasa.calls[0]["message"] == "这盏路灯不亮了"  # the caption is the text
    # The stand-in serves a JPEG for every file: a voice note or PDF that is really a JPEG is refused, not kept.
    assert voice["attachments"][0]["kind"] == "audio" and "not audio/ogg" in voice["attachments"][0]["rejected"]
    assert document["attachments"][0]["name"] == "证明材料.pdf"
    assert location["location"] == {"latitude": 30.2741, "longitude": 120.1551, "label": None}


async def test_a_send_failing_twice_then_succeeding_and_a_429(gateway: Gateway, telegram: StandInTelegram) -> None:
    telegram.failures.plan = [500, (429, 1)]
    await gateway.post_telegram(telegram_update("message_text", update_id=11, text="first"))
    await gateway.post_telegram(telegram_update("message_text", update_id=12, text="second"))
    await gateway.settle()
    assert [m["text"] for m in telegram.sent("sendMessage")] == ["echo:first", "echo:second"]


async def test_blocking_the_bot_opts_out_and_a_blocked_send_fails_for_good(
    gateway: Gateway, telegram: StandInTelegram
) -> None:
    await gateway.post_telegram(telegram_update("message_text"))
    await gateway.settle()
    await gateway.post_telegram(telegram_update("my_chat_member_kicked"))
    await gateway.settle()
    async with gateway.db.sessions() as session:
        contact_id = (await session.execute(select(Contact.id))).scalar_one()
    assert not await may_send_proactive(gateway.db, contact_id, "telegram")
    assert len(telegram.sent("sendMessage")) == 1  # no confirmation to someone who blocked us
    blocked = telegram_update("message_text", update_id=77)
    blocked["message"]["chat"]["id"] = blocked["message"]["from"]["id"] = 666
    await gateway.post_telegram(blocked)
    await gateway.settle()
    async with gateway.db.sessions() as session:
        states = list((await session.execute(
            select(Message.delivery_state).join(Conversation).join(ChannelIdentity)
            .where(ChannelIdentity.external_user_id == "666", Message.direction == "out"))).scalars())
    assert states == ["failed"]


async def test_a_shared_contact_merges_sms_and_telegram_into_one_contact(
    tmp_path: Path, rasa: StandInRasa, telegram: StandInTelegram
) -> None:
    twilio = await StandInTwilio().start()
    try:
        async with running_gateway(gateway_settings(tmp_path, rasa, twilio, telegram=telegram)) as gw:
            await gw.post_sms(sms_form("路灯坏了", sender="+8613800138000"))
            await gw.settle()
            await gw.post_telegram(telegram_update("message_text"))
            await gw.settle()
            assert await count(gw, Contact) == 2
            await gw.post_telegram(telegram_update("contact"))
            await gw.settle()
            async with gw.db.sessions() as session:
                contacts = {c for c in (await session.execute(select(Conversation.contact_id))).scalars()}
                identities = {i for i in (await session.execute(select(ChannelIdentity.contact_id))).scalars()}
                merge = (await session.execute(select(ContactMerge))).scalar_one()
            assert len(contacts) == 1 and identities == contacts  # one contact, one history
            assert merge.into_contact_id in contacts and merge.phone == "+8613800138000"
            assert rasa.calls[-1]["metadata"]["contact_id"] == merge.into_contact_id
    finally:
        await twilio.stop()


async def test_set_webhook_registers_the_url_with_the_secret(tmp_path: Path, rasa: StandInRasa,
                                                             telegram: StandInTelegram) -> None:
    settings = gateway_settings(tmp_path, rasa, telegram=telegram)
    url = await register(settings)
    assert url == "https://gw.binjiang.example/channels/telegram/webhook"
    [call] = telegram.sent("setWebhook")
    assert call["url"] == url and call["secret_token"] == TG_SECRET
