"""The SMS channel against a stand-in of Twilio's REST API (the real `twilio` SDK on our side, requests signed by the
SDK's RequestValidator) and a stand-in Rasa, on an in-process gateway with its real database and outbox."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from channels.sms.segments import sms_segments
from gateway.optouts import may_send_proactive
from gateway.outbox import OutboxRow
from gateway.storage import Contact, Message
from tests.channels.support import (
    FIXTURES,
    FROM_NUMBER,
    Gateway,
    StandInRasa,
    StandInTwilio,
    eventually,
    gateway_settings,
    load_form,
    running_gateway,
    signed_form,
    sms_form,
)
from tests.conftest import REDIS_URL

CITIZEN = "+8613800138000"


@pytest.fixture
async def gateway(tmp_path: Path, rasa: StandInRasa, twilio: StandInTwilio) -> AsyncIterator[Gateway]:
    async with running_gateway(gateway_settings(tmp_path, rasa, twilio)) as gw:
        yield gw


async def count(gw: Gateway, model: type, *where: object) -> int:
    async with gw.db.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(model).where(*where))).scalar_one())


async def outbound(gw: Gateway) -> list[Message]:
    async with gw.db.sessions() as session:
        return list((await session.execute(
            select(Message).where(Message.direction == "out").order_by(Message.id))).scalars())


async def test_a_signed_message_is_acked_with_empty_twiml_and_answered(gateway: Gateway, twilio: StandInTwilio,
                                                                       rasa: StandInRasa) -> None:
    form = load_form(FIXTURES / "sms" / "fixtures" / "inbound_sms.form")
    response = await gateway.post_sms(form)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    assert response.text.endswith("<Response></Response>")
    await gateway.settle()
    assert rasa.texts() == ["路灯坏了"]
    assert rasa.calls[0]["metadata"]["channel"] == "sms"
    assert twilio.sent[0]["To"] == CITIZEN and twilio.sent[0]["From"] == FROM_NUMBER
    assert twilio.sent[0]["Body"] == "echo:路灯坏了"
    assert twilio.sent[0]["StatusCallback"] == "https://gw.binjiang.example/channels/sms/status"
    [reply] = await outbound(gateway)
    assert reply.delivery_state == "sent"
    async with gateway.db.sessions() as session:
        contact = (await session.execute(select(Contact))).scalar_one()
    assert contact.phone == CITIZEN  # the carrier vouches for the sender's number

    # Twilio's receipt moves the reply to delivered (signed the same way).
    receipt = load_form(FIXTURES / "sms" / "fixtures" / "status_delivered.form")
    receipt.update(MessageSid=twilio.sent[0]["sid"], SmsSid=twilio.sent[0]["sid"])
    response = await gateway.post_sms(receipt, path="/channels/sms/status")
    assert response.status_code == 204
    [reply] = await outbound(gateway)
    assert reply.delivery_state == "delivered"
    # A late "sent" receipt does not move it back.
    receipt.update(MessageStatus="sent", SmsStatus="sent")
    await gateway.post_sms(receipt, path="/channels/sms/status")
    assert (await outbound(gateway))[0].delivery_state == "delivered"


async def test_forged_and_unsigned_requests_are_refused_and_nothing_is_stored(gateway: Gateway,
                                                                              rasa: StandInRasa) -> None:
    form = sms_form("我要投诉")
    body, headers = signed_form("/channels/sms/webhook", form, token="not-the-auth-token")
    forged = await gateway.client.post("/channels/sms/webhook", content=body, headers=headers)
    assert forged.status_code == 403
    body, headers = signed_form("/channels/sms/webhook", form)
    tampered = await gateway.client.post(
        "/channels/sms/webhook", content=body.replace(b"Body=", b"Body=X"), headers=headers
    )
    assert tampered.status_code == 403
    unsigned = await gateway.client.post(
        "/channels/sms/webhook", content=body, headers={"Content-Type": headers["Content-Type"]}
    )
    assert unsigned.status_code == 403
    wrong_path = await gateway.post_sms(form, path="/channels/sms/webhook?x=1")  # signed for another URL
    assert wrong_path.status_code in (403, 200)
    status = await gateway.client.post("/channels/sms/status", content=b"MessageSid=SM1&MessageStatus=failed",
                                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status.status_code == 403
    await asyncio.sleep(0.05)
    assert await count(gateway, Message, Message.original_text == "我要投诉") <= (1 if wrong_path.status_code == 200
                                                                             else 0)
    assert await count(gateway, Message, Message.text.like("X%")) == 0


@pytest.mark.parametrize("coordination", ["in-process", pytest.param("redis", marks=pytest.mark.redis)])
async def test_the_same_delivery_three_times_is_answered_once(
    tmp_path: Path, rasa: StandInRasa, twilio: StandInTwilio, coordination: str, redis_prefix: str
) -> None:
    extra = {"redis_url": REDIS_URL, "redis_key_prefix": redis_prefix} if coordination == "redis" else {}
    async with running_gateway(gateway_settings(tmp_path, rasa, twilio, **extra)) as gw:
        form = sms_form("居住证怎么办理", sid="SM" + "d" * 32)
        responses = await asyncio.gather(*(gw.post_sms(form) for _ in range(3)))
        assert [r.status_code for r in responses] == [200, 200, 200]
        await gw.settle()
        again = await gw.post_sms(form)  # and once more, after it was answered
        assert again.status_code == 200
        await gw.settle()
        assert rasa.texts() == ["居住证怎么办理"]
        assert twilio.bodies() == ["echo:居住证怎么办理"]
        assert await count(gw, Message, Message.direction == "in") == 1


async def test_two_quick_messages_are_answered_in_order(gateway: Gateway, twilio: StandInTwilio,
                                                        rasa: StandInRasa) -> None:
    rasa.delay = 0.05  # the first turn is still running when the second arrives
    await gateway.post_sms(sms_form("first"))
    await gateway.post_sms(sms_form("second"))
    other = await gateway.post_sms(sms_form("other citizen", sender="+8613900000000"))
    assert other.status_code == 200
    await gateway.settle()
    assert twilio.bodies(CITIZEN) == ["echo:first", "echo:second"]
    assert twilio.bodies("+8613900000000") == ["echo:other citizen"]


async def test_a_send_failing_twice_then_succeeding_is_delivered_once(gateway: Gateway,
                                                                      twilio: StandInTwilio) -> None:
    twilio.failures.plan = [500, 500]
    await gateway.post_sms(sms_form("hello"))
    await gateway.post_sms(sms_form("after"))  # waits behind the first reply, in order
    await gateway.settle()
    assert twilio.attempts == 4
    assert twilio.bodies() == ["echo:hello", "echo:after"]
    async with gateway.db.sessions() as session:
        rows = list((await session.execute(select(OutboxRow).order_by(OutboxRow.id))).scalars())
    assert [(r.state, r.attempts) for r in rows] == [("sent", 3), ("sent", 1)]
    assert [m.delivery_state for m in await outbound(gateway)] == ["sent", "sent"]


async def test_429_retry_after_is_honoured(gateway: Gateway, twilio: StandInTwilio) -> None:
    twilio.failures.plan = [(429, 0.6)]
    await gateway.post_sms(sms_form("busy"))
    await gateway.settle()
    assert twilio.bodies() == ["echo:busy"]
    assert twilio.attempt_times[1] - twilio.attempt_times[0] >= 0.6  # not the 0.05 s backoff


async def test_after_the_last_try_the_reply_is_failed_where_agents_see_it(
    tmp_path: Path, rasa: StandInRasa, twilio: StandInTwilio
) -> None:
    twilio.failures.plan = [500] * 10
    async with running_gateway(gateway_settings(tmp_path, rasa, twilio, outbox_max_attempts=3)) as gw:
        async with gw.services.coordination.subscribe("inbox") as inbox:
            await gw.post_sms(sms_form("anyone there"))
            await gw.settle()
            events = []
            while (event := await inbox.get(timeout=0.2)) is not None:
                events.append(event)
        [reply] = await outbound(gw)
        assert reply.delivery_state == "failed"
        assert "500" in reply.payload["delivery_error"]
        assert twilio.attempts == 3
        assert any(e.get("type") == "delivery" and e["state"] == "failed" for e in events)


async def test_buttons_become_a_numbered_list_and_2_maps_back(gateway: Gateway, twilio: StandInTwilio,
                                                              rasa: StandInRasa) -> None:
    await gateway.post_sms(sms_form("选项"))
    await gateway.settle()
    assert twilio.bodies() == ["请选择您要办理的事项\n请回复序号：\n1. 办理居住证\n2. 路灯报修"]
    await gateway.post_sms(sms_form("2"))
    await gateway.settle()
    await gateway.post_sms(sms_form("buttons"))
    await gateway.settle()
    await gateway.post_sms(sms_form("一"))
    await gateway.settle()
    assert rasa.texts() == ["选项", "/report_streetlight", "buttons", "/ask_residence_permit"]
    await gateway.post_sms(sms_form("2"))  # no buttons were offered just before: plain text
    await gateway.settle()
    assert rasa.texts()[-1] == "2"


async def test_a_long_reply_is_split_between_sentences_within_the_segment_limit(
    gateway: Gateway, twilio: StandInTwilio
) -> None:
    await gateway.post_sms(sms_form("long"))
    await gateway.settle()
    bodies = twilio.bodies()
    assert len(bodies) > 1
    sentence = "您好，请携带身份证和居住证明到街道办事处办理。"
    assert "".join(bodies) == sentence * 60
    for body in bodies:
        assert sms_segments(body).segments <= 10
        assert body.endswith("。")
    [reply] = await outbound(gateway)
    assert reply.delivery_state == "sent"  # one message, several SMS parts, all sent


async def test_an_mms_photo_is_kept_as_an_attachment(gateway: Gateway, twilio: StandInTwilio, rasa: StandInRasa,
                                                     tmp_path: Path) -> None:
    form = load_form(FIXTURES / "sms" / "fixtures" / "inbound_mms.form")
    form["MediaUrl0"] = form["MediaUrl0"].replace("STANDIN", twilio.url)
    assert (await gateway.post_sms(form)).status_code == 200
    await gateway.settle()
    [attachment] = rasa.calls[0]["metadata"]["attachments"]
    assert attachment["kind"] == "image" and attachment["mime"] == "image/jpeg"
    assert attachment["ref"].startswith("media/") and (tmp_path / attachment["ref"]).read_bytes()[:3] == b"\xff\xd8\xff"
    async with gateway.db.sessions() as session:
        stored = (await session.execute(select(Message).where(Message.direction == "in"))).scalar_one()
    assert stored.payload["attachments"][0]["ref"] == attachment["ref"]
    assert stored.payload["attachments"][0]["url"].endswith("/media/ME0123.jpg")


async def test_media_that_is_not_what_it_claims_is_refused_but_not_dropped(gateway: Gateway,
                                                                           twilio: StandInTwilio,
                                                                           rasa: StandInRasa) -> None:
    form = sms_form("看附件", NumMedia="1", MediaUrl0=f"{twilio.url}/media/x.html", MediaContentType0="image/jpeg")
    await gateway.post_sms(form)
    await gateway.settle()
    [attachment] = rasa.calls[0]["metadata"]["attachments"]
    assert attachment["ref"] is None and "not allowed" in attachment["rejected"]
    assert twilio.bodies() == ["echo:看附件"]


async def test_stop_and_tuiding_end_proactive_messages_confirmed_once_start_reverses(
    gateway: Gateway, twilio: StandInTwilio, rasa: StandInRasa
) -> None:
    await gateway.post_sms(sms_form("你好"))
    await gateway.settle()
    async with gateway.db.sessions() as session:
        contact_id = (await session.execute(select(Contact.id))).scalar_one()
    assert await may_send_proactive(gateway.db, contact_id, "sms")
    await gateway.post_sms(sms_form("退订"))
    await gateway.settle()
    await gateway.post_sms(sms_form("STOP"))  # already out: not confirmed again
    await gateway.settle()
    assert not await may_send_proactive(gateway.db, contact_id, "sms")
    assert await may_send_proactive(gateway.db, contact_id, "telegram")
    bodies = twilio.bodies()
    assert len(bodies) == 2 and "已退订" in bodies[1]
    await gateway.post_sms(sms_form("订阅"))
    await gateway.settle()
    assert await may_send_proactive(gateway.db, contact_id, "sms")
    assert "恢复订阅" in twilio.bodies()[-1]
    assert rasa.texts() == ["你好"]  # the keywords never reached the bot
    # Twilio's own opt-out handling (Advanced Opt-Out) already confirmed: recorded, not confirmed again.
    await gateway.post_sms(sms_form("STOP", OptOutType="STOP"))
    await gateway.settle()
    assert not await may_send_proactive(gateway.db, contact_id, "sms")
    assert len(twilio.bodies()) == 3


async def test_twilio_refusing_an_unsubscribed_number_fails_for_good_and_opts_out(
    gateway: Gateway, twilio: StandInTwilio
) -> None:
    await gateway.post_sms(sms_form("hi", sender="+15005550009"))
    await gateway.settle()
    [reply] = await outbound(gateway)
    assert reply.delivery_state == "failed" and twilio.attempts == 1
    async with gateway.db.sessions() as session:
        contact_id = (await session.execute(select(Contact.id))).scalar_one()
    assert not await may_send_proactive(gateway.db, contact_id, "sms")


async def test_routes_are_not_served_without_settings(tmp_path: Path, rasa: StandInRasa) -> None:
    async with running_gateway(gateway_settings(tmp_path, rasa)) as gw:
        body, headers = signed_form("/channels/sms/webhook", sms_form("hi"))
        response = await gw.client.post("/channels/sms/webhook", content=body, headers=headers)
        assert response.status_code == 404
        assert (await eventually(lambda: True)) is True
