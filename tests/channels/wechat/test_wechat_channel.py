"""The WeChat official-account channel against a stand-in of api.weixin.qq.com and a stand-in Rasa, on an
in-process gateway with its real database and outbox. Pushes are signed by hand (plaintext mode) and encrypted with
wechatpy's own WeChatCrypto (compatible and safe modes)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import xmltodict
from sqlalchemy import func, select, update

from gateway.message import OutboundMessage
from gateway.optouts import may_send_proactive
from gateway.outbox import OutboxRow
from gateway.storage import Contact, Message
from tests.channels.support import BUTTONS, Gateway, StandInRasa, gateway_settings, running_gateway
from tests.channels.wechat.standin import (
    ACCOUNT,
    AES_KEY,
    APP_ID,
    APP_SECRET,
    TEMPLATE_ID,
    TOKEN,
    StandInWeChat,
    WeChatPush,
    fixture,
    sign,
)
from tests.conftest import REDIS_URL, temporary_postgres_database

OPENID = "oBj7x5Kq3mZc_citizen_0001"
PATH = "/channels/wechat/webhook"
push = WeChatPush()


@pytest.fixture
async def wechat() -> AsyncIterator[StandInWeChat]:
    server = await StandInWeChat().start()
    yield server
    await server.stop()


def wechat_settings(tmp_path: Path, rasa: StandInRasa, wechat: StandInWeChat, **extra: Any) -> Any:
    values: dict[str, Any] = {
        "wechat_app_id": APP_ID, "wechat_app_secret": APP_SECRET, "wechat_token": TOKEN,
        "wechat_encoding_aes_key": AES_KEY, "wechat_api_base_url": wechat.url,
        "wechat_notice_template_id": TEMPLATE_ID, **extra,
    }
    return gateway_settings(tmp_path, rasa, **values)


@pytest.fixture
async def gateway(tmp_path: Path, rasa: StandInRasa, wechat: StandInWeChat) -> AsyncIterator[Gateway]:
    async with running_gateway(wechat_settings(tmp_path, rasa, wechat)) as gw:
        yield gw


async def post(gw: Gateway, signed: tuple[dict[str, str], bytes]) -> httpx.Response:
    query, body = signed
    return await gw.client.post(PATH, params=query, content=body, headers={"Content-Type": "text/xml"})


def passive(response: httpx.Response) -> dict[str, Any]:
    """The passive reply in a webhook answer (decrypted when it is encrypted)."""
    assert response.status_code == 200 and response.text != "success", response.text
    document = xmltodict.parse(response.text)["xml"]
    return push.open_reply(response.text) if "Encrypt" in document else dict(document)


async def settle(gw: Gateway, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = [t for t in gw.services._tasks if t.get_name() == "wechat-turn"]
        if busy:
            await asyncio.wait(busy, timeout=max(0.01, deadline - time.monotonic()))
            continue
        await gw.services.outbox.drain(max(0.01, deadline - time.monotonic()))
        if not [t for t in gw.services._tasks if t.get_name() == "wechat-turn"]:
            return
    raise TimeoutError("gateway did not settle")


async def count(gw: Gateway, model: type, *where: Any) -> int:
    async with gw.db.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(model).where(*where))).scalar_one())


# ---- verification ---------------------------------------------------------------------------------------------------


async def test_the_handshake_echoes_only_for_our_token(gateway: Gateway) -> None:
    query = push.handshake("echo-12345")
    response = await gateway.client.get(PATH, params=query)
    assert response.status_code == 200 and response.text == "echo-12345"
    forged = WeChatPush(token="someone-else").handshake()
    assert (await gateway.client.get(PATH, params=forged)).status_code == 403
    assert (await gateway.client.get(PATH, params={"echostr": "x"})).status_code == 403


async def test_forgeries_are_refused_with_nothing_stored(gateway: Gateway, rasa: StandInRasa) -> None:
    xml = fixture("text", content="你好")
    query, body = push.safe(xml)
    for bad in (
        {**query, "signature": "0" * 40},  # the plain signature
        {**query, "msg_signature": "0" * 40},  # the signature over the ciphertext
        {k: v for k, v in query.items() if k != "msg_signature"},
    ):
        assert (await post(gateway, (bad, body))).status_code == 403
    # Right token, other key: the ciphertext does not decrypt to a message for this account.
    assert (await post(gateway, WeChatPush(aes_key="Z" * 43).safe(xml))).status_code in (400, 403)
    # Right token and key but sealed for another AppId.
    assert (await post(gateway, WeChatPush(app_id="wx0000000000000000").safe(xml))).status_code == 403
    # A plaintext push with a bad signature.
    plain_query, plain_body = push.plaintext(xml)
    assert (await post(gateway, ({**plain_query, "timestamp": "1"}, plain_body))).status_code == 403
    # A correctly signed query from an hour ago (the signature does not cover a plaintext body): a replay.
    old_stamp = str(int(time.time()) - 3600)
    replayed = {**plain_query, "timestamp": old_stamp, "signature": sign(TOKEN, old_stamp, plain_query["nonce"])}
    assert (await post(gateway, (replayed, plain_body))).status_code == 403
    # Authentic but not WeChat XML: a clear 400.
    q, _ = push.safe(xml)
    garbage = await gateway.client.post(PATH, params=q, content=b"<html>nope")
    assert garbage.status_code == 400 and "XML" in garbage.json()["detail"]
    await settle(gateway)
    assert await count(gateway, Message) == 0 and rasa.calls == []


# ---- the five-second rule -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["plaintext", "compatible", "safe"])
async def test_a_fast_bot_is_answered_passively_in_every_mode(tmp_path: Path, wechat: StandInWeChat,
                                                             rasa: StandInRasa, mode: str) -> None:
    xml = fixture("text", content="你好")
    signed = push.plaintext(xml) if mode == "plaintext" else push.safe(xml, compatible=mode == "compatible")
    # Plaintext pushes are for accounts without an EncodingAESKey (with one they are refused: see
    # test_wechat_downgrade_and_replay.py).
    key = "" if mode == "plaintext" else AES_KEY
    async with running_gateway(wechat_settings(tmp_path, rasa, wechat, wechat_encoding_aes_key=key)) as gateway:
        response = await post(gateway, signed)
        if mode != "plaintext":
            assert "<Encrypt>" in response.text and "echo" not in response.text  # the reply is encrypted too
        reply = passive(response)
        assert reply["MsgType"] == "text" and reply["Content"] == "echo:你好"
        assert reply["ToUserName"] == OPENID and reply["FromUserName"] == ACCOUNT
        await settle(gateway)
        assert rasa.texts() == ["你好"]
        assert wechat.custom == []  # answered once, in the webhook's response
        async with gateway.db.sessions() as session:
            [state] = (await session.execute(select(Message.delivery_state)
                                             .where(Message.direction == "out"))).scalars()
        assert state == "sent"
        assert await count(gateway, OutboxRow) == 0


async def test_a_triple_delivery_is_answered_once(gateway: Gateway, wechat: StandInWeChat,
                                                  rasa: StandInRasa) -> None:
    signed = push.safe(fixture("text", content="路灯坏了", msg_id=24111111111111111))
    responses = await asyncio.gather(*(post(gateway, signed) for _ in range(3)))
    assert {r.status_code for r in responses} == {200}
    replies = [r for r in responses if r.text != "success"]
    assert len(replies) == 1 and passive(replies[0])["Content"] == "echo:路灯坏了"
    # WeChat's later retry of a message already answered passively: no second reply.
    assert (await post(gateway, signed)).text == "success"
    await settle(gateway)
    assert rasa.texts() == ["路灯坏了"] and wechat.custom == []
    assert await count(gateway, Message, Message.direction == "in") == 1


async def test_a_slow_bot_gets_success_then_a_customer_service_message(
    tmp_path: Path, rasa: StandInRasa, wechat: StandInWeChat
) -> None:
    rasa.delay = 2.0
    async with running_gateway(wechat_settings(tmp_path, rasa, wechat, wechat_passive_reply_seconds=0.2)) as gw:
        signed = push.safe(fixture("text", content="我要办居住证"))
        started = time.monotonic()
        response = await post(gw, signed)
        # Answered before the bot was: what matters is the order, not a figure (a loaded machine is slow).
        assert response.text == "success" and time.monotonic() - started < rasa.delay
        assert (await post(gw, signed)).text == "success"  # WeChat's retry meanwhile
        await settle(gw)
    assert wechat.custom == [{"touser": OPENID, "msgtype": "text", "text": {"content": "echo:我要办居住证"}}]
    assert rasa.texts() == ["我要办居住证"]


async def test_a_long_reply_goes_as_customer_service_messages_under_2048_bytes(
    gateway: Gateway, wechat: StandInWeChat
) -> None:
    response = await post(gateway, push.safe(fixture("text", content="long")))
    assert response.text == "success"
    await settle(gateway)
    parts = wechat.custom_texts(OPENID)
    assert len(parts) >= 2 and all(len(p.encode()) <= 2048 for p in parts)
    assert "".join(parts).replace("\n", "") == "您好，请携带身份证和居住证明到街道办事处办理。" * 60


async def test_buttons_are_numbered_lines_and_a_number_picks_one(gateway: Gateway, rasa: StandInRasa) -> None:
    reply = passive(await post(gateway, push.safe(fixture("text", content="选项"))))
    lines = reply["Content"].splitlines()
    assert lines[0] == "请选择您要办理的事项" and lines[2:] == [f"{i}. {b['title']}" for i, b in
                                                              enumerate(BUTTONS, 1)]
    passive(await post(gateway, push.safe(fixture("text", content="二"))))
    assert rasa.texts() == ["选项", BUTTONS[1]["payload"]]


# ---- message types ------------------------------------------------------------------------------------------------


async def test_image_voice_video_location_and_link(gateway: Gateway, rasa: StandInRasa, wechat: StandInWeChat,
                                                  tmp_path: Path) -> None:
    for name in ("image", "voice_recognized", "voice", "location", "link", "video"):
        response = await post(gateway, push.safe(fixture(name)))
        assert response.status_code == 200, (name, response.text)
        await settle(gateway)
    image, recognized, voice, location, link, video = rasa.calls
    [kept] = image["metadata"]["attachments"]
    assert kept["kind"] == "image" and kept["ref"].startswith("media/")
    assert (tmp_path / kept["ref"]).read_bytes()[:3] == b"\xff\xd8\xff"
    assert recognized["message"] == "我家门口的路灯坏了"  # WeChat's speech recognition is the text
    [audio] = recognized["metadata"]["attachments"]
    assert audio["kind"] == "audio" and audio["mime"] == "audio/amr" and audio["ref"].endswith(".amr")
    assert voice["message"] == "" and voice["metadata"]["attachments"][0]["ref"]
    assert location["metadata"]["location"] == {"latitude": 30.274085, "longitude": 120.15507,
                                                "label": "滨江市江南大道1001号"}
    assert link["message"] == "小区垃圾清运不及时\nhttps://mp.weixin.qq.com/s/Xy12AbCdEfGh"
    # The stand-in has no such video: its reference and the reason are kept, the message is answered anyway.
    assert video["metadata"]["attachments"][0]["rejected"].startswith("fetch failed")


# ---- events -----------------------------------------------------------------------------------------------------


async def test_subscribe_welcomes_with_the_menu_and_a_number_picks_an_entry(
    gateway: Gateway, rasa: StandInRasa
) -> None:
    signed = push.safe(fixture("event_subscribe", create_time=1763900000))
    welcome = passive(await post(gateway, signed))["Content"]
    assert welcome.startswith("您好，欢迎关注滨江市政务服务")
    assert "1. 常见问题" in welcome and "3. 问题报修" in welcome
    assert '2. <a href="https://www.binjiang.gov.example/guide">办事指南</a>' in welcome
    assert (await post(gateway, signed)).text == "success"  # the event redelivered: FromUserName + CreateTime
    await settle(gateway)
    assert rasa.calls == []  # the welcome is the channel's own
    passive(await post(gateway, push.safe(fixture("text", content="3"))))
    assert rasa.texts() == ["/report_problem"]


async def test_menu_clicks_are_intents_and_silent_events_are_kept_unanswered(
    gateway: Gateway, rasa: StandInRasa
) -> None:
    reply = passive(await post(gateway, push.safe(fixture("event_click", key="CHECK_WORK_ORDER"))))
    assert reply["Content"] == "echo:/check_work_order_status"
    for name in ("event_location", "event_view"):
        assert (await post(gateway, push.safe(fixture(name)))).text == "success"
    await settle(gateway)
    assert rasa.texts() == ["/check_work_order_status"]
    async with gateway.db.sessions() as session:
        stored = list((await session.execute(select(Message).where(Message.direction == "in")
                                             .order_by(Message.id))).scalars())
    assert [m.payload["metadata"]["event"] for m in stored] == ["click", "location", "view"]
    assert stored[1].payload["location"]["latitude"] == 30.274085


async def test_unsubscribe_opts_out_and_subscribing_again_opts_back_in(
    gateway: Gateway, wechat: StandInWeChat
) -> None:
    passive(await post(gateway, push.safe(fixture("text", content="你好"))))
    await post(gateway, push.safe(fixture("event_unsubscribe")))
    await settle(gateway)
    async with gateway.db.sessions() as session:
        contact_id = (await session.execute(select(Contact.id))).scalar_one()
    assert not await may_send_proactive(gateway.db, contact_id, "wechat")
    passive(await post(gateway, push.safe(fixture("event_subscribe_scan", create_time=1763900100))))
    await settle(gateway)
    assert await may_send_proactive(gateway.db, contact_id, "wechat")
    assert wechat.custom == []


# ---- the access_token -----------------------------------------------------------------------------------------------


async def test_an_expired_token_is_refreshed_once_and_the_send_retried(
    tmp_path: Path, rasa: StandInRasa, wechat: StandInWeChat
) -> None:
    async with running_gateway(wechat_settings(tmp_path, rasa, wechat, wechat_passive_reply_seconds=0)) as gw:
        assert (await post(gw, push.safe(fixture("text", content="first")))).text == "success"
        await settle(gw)
        assert wechat.token_fetches == 1
        wechat.expire_tokens()  # WeChat expired it early (another fetch elsewhere, or a reset)
        await post(gw, push.safe(fixture("text", content="second")))
        await post(gw, push.safe(fixture("text", content="third")))
        await settle(gw)
    assert wechat.custom_texts() == ["echo:first", "echo:second", "echo:third"]
    assert wechat.token_fetches == 2  # refreshed once, not per call
    codes = [code for path, code in wechat.attempts if path.endswith("custom/send")]
    assert codes == ["0", "42001", "0", "0"]


# ---- proactive notices ---------------------------------------------------------------------------------------------


async def _last_inbound_hours_ago(gw: Gateway, hours: float) -> str:
    async with gw.db.sessions() as session, session.begin():
        await session.execute(update(Message).where(Message.direction == "in")
                              .values(created_at=datetime.now(UTC) - timedelta(hours=hours)))
        return str((await session.execute(select(Contact.id))).scalar_one())


async def test_a_notice_outside_the_window_is_a_template_message_and_opt_out_is_honoured(
    gateway: Gateway, wechat: StandInWeChat
) -> None:
    outbox = gateway.services.outbox
    passive(await post(gateway, push.safe(fixture("text", content="路灯坏了"))))
    await settle(gateway)
    notice = OutboundMessage(text="您的工单 BJ-20261123-0007 已派至城管局处理。",
                             custom={"work_order_number": "BJ-20261123-0007", "status": "处理中"})
    contact_id = await _last_inbound_hours_ago(gateway, 1)
    result = await outbox.enqueue_proactive(contact_id, "wechat", notice, "work_order_assigned")
    await settle(gateway)
    assert result.state == "queued" and wechat.custom_texts() == [notice.text]  # within 48 h: customer service

    await _last_inbound_hours_ago(gateway, 49)
    result = await outbox.enqueue_proactive(contact_id, "wechat", notice, "work_order_assigned")
    await settle(gateway)
    [template] = wechat.templates
    assert template["touser"] == OPENID and template["template_id"] == TEMPLATE_ID
    assert template["data"]["keyword1"] == {"value": "BJ-20261123-0007"}
    assert template["data"]["keyword2"] == {"value": "处理中"}
    assert template["data"]["first"]["value"] == notice.text
    # WeChat's delivery receipt for the template message moves it to delivered.
    receipt = fixture("event_template_finish", msg_id=400000001, status="success")
    assert (await post(gateway, push.safe(receipt))).text == "success"
    async with gateway.db.sessions() as session:
        sent = await session.get(Message, result.message_id)
    assert sent is not None and sent.delivery_state == "delivered"

    await post(gateway, push.safe(fixture("event_unsubscribe")))
    await settle(gateway)
    await _last_inbound_hours_ago(gateway, 49)
    result = await outbox.enqueue_proactive(contact_id, "wechat", notice, "work_order_assigned")
    await settle(gateway)
    assert result.state == "skipped" and result.reason == "opted_out" and len(wechat.templates) == 1


async def test_vendor_errors_map_to_retry_or_failed(gateway: Gateway, wechat: StandInWeChat) -> None:
    connector = gateway.services.outbox.connectors["wechat"]
    [payload] = connector.render(OPENID, OutboundMessage(text="hi"), "zh")
    wechat.failures = [-1, 500]
    assert (await connector.send(payload)).state == "retry"  # system busy
    assert (await connector.send(payload)).state == "retry"  # HTTP 500
    assert (await connector.send(payload)).state == "sent"
    wechat.outside_window.add(OPENID)
    result = await connector.send(payload)
    assert result.state == "failed" and result.error.startswith("outside_window")
    wechat.unsubscribed.add(OPENID)
    result = await connector.send(payload)
    assert result.state == "failed" and result.error.startswith("opted_out")
    with pytest.raises(ValueError, match="no WeChat template"):
        connector.settings = type(connector.settings)(APP_ID, APP_SECRET, TOKEN)
        connector.render_proactive(OPENID, OutboundMessage(text="x"), "zh", "work_order_assigned")


@pytest.mark.postgres
@pytest.mark.redis
async def test_on_postgresql_and_redis_a_triple_delivery_is_answered_once_and_the_token_is_shared(
    tmp_path: Path, rasa: StandInRasa, wechat: StandInWeChat, redis_prefix: str
) -> None:
    async with temporary_postgres_database() as url:
        settings = wechat_settings(tmp_path, rasa, wechat, database_url=url, redis_url=REDIS_URL,
                                   redis_key_prefix=redis_prefix, wechat_passive_reply_seconds=1.0)
        async with running_gateway(settings) as gw:
            signed = push.safe(fixture("text", content="你好"))
            responses = await asyncio.gather(*(post(gw, signed) for _ in range(3)))
            [reply] = [r for r in responses if r.text != "success"]
            assert passive(reply)["Content"] == "echo:你好"
            rasa.delay = 1.5  # past the budget: "success" now, a customer-service message later
            assert (await post(gw, push.safe(fixture("text", content="慢一点")))).text == "success"
            await settle(gw)
            coordination = gw.services.coordination
            cached = await coordination.get(f"wechat:access_token:{APP_ID}")
    assert rasa.texts() == ["你好", "慢一点"] and wechat.custom_texts() == ["echo:慢一点"]
    assert cached is not None and wechat.token_fetches == 1  # the token lives in Redis, for every worker
