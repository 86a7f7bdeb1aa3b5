"""The phone line against the `twilio` SDK: requests signed by the SDK's RequestValidator over the very addresses our
TwiML (built with the SDK's VoiceResponse) told Twilio to call next, a stand-in Rasa, and a stand-in of Twilio's REST
API for the texts sent to callers and the recordings they leave. Every call follows the TwiML it was given."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from gateway.message import OutboundMessage
from gateway.storage import Contact, Conversation, Message
from tests.channels.support import (
    FIXTURES,
    FROM_NUMBER,
    MP3,
    PUBLIC_BASE,
    Gateway,
    StandInRasa,
    StandInTwilio,
    eventually,
    gateway_settings,
    load_form,
    running_gateway,
    signed_form,
)

CALLER = "+8613800138000"
VOICE = FIXTURES / "voice" / "fixtures"
WEBHOOK = "/channels/voice/webhook"


def closed_hours() -> str:
    """Service hours on another weekday than today (in the centre's zone): nobody answers the phone now."""
    today = datetime.now(ZoneInfo("Asia/Shanghai")).weekday()
    other = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[(today + 3) % 7]
    return f"{other} 09:00-10:00"


@pytest.fixture
async def gateway(tmp_path: Path, rasa: StandInRasa, twilio: StandInTwilio) -> AsyncIterator[Gateway]:
    settings = gateway_settings(tmp_path, rasa, twilio, service_hours="24x7", voice_transfer_to="+8657112345")
    async with running_gateway(settings) as gw:
        yield gw


class Call:
    """One phone call as Twilio makes it: each request goes to the address the last TwiML gave, signed."""

    def __init__(self, gateway: Gateway, sid: str = "CA5f7a1e2d3c4b5a69788796a5b4c3d2e1", caller: str = CALLER,
                 **extra: str) -> None:
        self.gateway = gateway
        self.base = {**load_form(VOICE / "incoming_call.form"), "CallSid": sid, "From": caller, "Caller": caller,
                     "CallStatus": "in-progress", **extra}
        self.next_url = WEBHOOK
        self.last: ET.Element | None = None

    async def post(self, path: str, **fields: str) -> httpx.Response:
        body, headers = signed_form(path, {**self.base, **fields})
        return await self.gateway.client.post(path, content=body, headers=headers)

    async def step(self, **fields: str) -> ET.Element:
        """Post to where the last TwiML pointed (a <Gather>'s action), as Twilio would; the new TwiML."""
        response = await self.post(self.next_url, **fields)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/xml")
        self.last = ET.fromstring(response.text)
        gather = self.last.find("Gather")
        if gather is not None:
            self.next_url = gather.attrib["action"].removeprefix(PUBLIC_BASE)
        return self.last

    async def answer(self) -> ET.Element:
        return await self.step(CallStatus="ringing")

    async def say(self, words: str) -> ET.Element:
        return await self.step(SpeechResult=words, Confidence="0.91")

    async def press(self, key: str) -> ET.Element:
        return await self.step(Digits=key)


def spoken(twiml: ET.Element) -> list[str]:
    return [say.text or "" for say in twiml.iter("Say")]


async def rows(gw: Gateway, model: type, *where: object) -> list:  # type: ignore[type-arg]
    async with gw.db.sessions() as session:
        return list((await session.execute(select(model).where(*where).order_by(model.id))).scalars())  # type: ignore[attr-defined]


async def test_a_call_is_greeted_then_each_spoken_turn_is_answered_in_twiml(gateway: Gateway, rasa: StandInRasa,
                                                                              twilio: StandInTwilio) -> None:
    call = Call(gateway)
    greeting = await call.answer()
    gather = greeting.find("Gather")
    assert gather is not None
    assert gather.attrib["input"] == "speech dtmf" and gather.attrib["language"] == "zh-CN"
    assert gather.attrib["action"] == f"{PUBLIC_BASE}{WEBHOOK}?turn=1&lang=zh&menu=1"
    hints = gather.attrib["hints"].split(",")
    assert "转人工" in hints and "路灯坏了" in hints  # the service intents' short examples
    assert "讲个笑话" not in hints  # small talk teaches the recogniser nothing
    assert "滨江" in spoken(greeting)[0] and "press 9" in spoken(greeting)[0]
    assert rasa.calls == []  # a greeting is not a turn

    answer = await call.say("路灯坏了")
    assert rasa.texts() == ["路灯坏了"]
    assert rasa.calls[0]["metadata"]["channel"] == "voice"
    [say] = answer.find("Gather").iter("Say")  # type: ignore[union-attr]
    assert say.text == "echo:路灯坏了" and say.attrib["voice"] == "Polly.Zhiyu" and say.attrib["language"] == "zh-CN"
    assert call.next_url == f"{WEBHOOK}?turn=2&lang=zh"  # the language menu was the greeting's only
    assert answer.find("Redirect") is not None  # silence asks again
    # Spoken in the call, never texted as well; the caller's number is who they are (the same contact as SMS).
    assert twilio.sent == []
    [reply] = await rows(gateway, Message, Message.direction == "out")
    assert reply.delivery_state == "sent" and reply.channel == "voice"
    [contact] = await rows(gateway, Contact)
    assert contact.phone == CALLER
    [inbound] = await rows(gateway, Message, Message.direction == "in")
    assert inbound.external_id == "CA5f7a1e2d3c4b5a69788796a5b4c3d2e1:1"


async def test_the_real_payloads_of_a_turn_are_read(gateway: Gateway, rasa: StandInRasa) -> None:
    form = load_form(VOICE / "gather_speech.form")
    body, headers = signed_form(f"{WEBHOOK}?turn=1&lang=zh", form)
    response = await gateway.client.post(f"{WEBHOOK}?turn=1&lang=zh", content=body, headers=headers)
    assert response.status_code == 200
    assert rasa.texts() == ["路灯坏了"]


async def test_buttons_are_a_spoken_menu_and_a_key_picks_one(gateway: Gateway, rasa: StandInRasa) -> None:
    call = Call(gateway)
    await call.answer()
    menu = await call.say("选项")
    [said] = spoken(menu)
    assert said.startswith("请选择您要办理的事项")
    assert "办理居住证，请按1；路灯报修，请按2。" in said
    assert [s.attrib["voice"] for s in menu.iter("Say")] == ["Polly.Zhiyu"]
    await call.press("2")
    assert rasa.texts()[-1] == "/report_streetlight"


async def test_english_by_the_menu_and_by_the_number_called(tmp_path: Path, rasa: StandInRasa,
                                                            twilio: StandInTwilio) -> None:
    settings = gateway_settings(tmp_path, rasa, twilio, voice_english_numbers="+15005550007")
    async with running_gateway(settings) as gw:
        call = Call(gw)
        await call.answer()
        english = await call.press("9")
        gather = english.find("Gather")
        assert gather is not None and gather.attrib["language"] == "en-US"
        assert spoken(english)[0].startswith("Welcome to the Binjiang City service line")
        assert rasa.calls == []  # choosing the language is not a turn
        await call.say("my street light is broken")
        assert rasa.texts() == ["my street light is broken"]

        other = Call(gw, sid="CA00000000000000000000000000000002", To="+15005550007", Called="+15005550007")
        greeting = await other.answer()
        assert greeting.find("Gather").attrib["language"] == "en-US"  # type: ignore[union-attr]


async def test_a_forged_or_altered_request_is_refused(gateway: Gateway, rasa: StandInRasa) -> None:
    form = load_form(VOICE / "gather_speech.form")
    body, headers = signed_form(WEBHOOK, form, token="not-our-token")
    assert (await gateway.client.post(WEBHOOK, content=body, headers=headers)).status_code == 403
    body, _ = signed_form(WEBHOOK, form)
    assert (await gateway.client.post(WEBHOOK, content=body,
                                      headers={"Content-Type": "application/x-www-form-urlencoded"})).status_code == 403
    # The turn and language ride in the signed address: another turn number is another address, refused.
    body, headers = signed_form(f"{WEBHOOK}?turn=1&lang=zh", form)
    assert (await gateway.client.post(f"{WEBHOOK}?turn=7&lang=zh", content=body, headers=headers)).status_code == 403
    for path in ("/channels/voice/recording", "/channels/voice/transcription", "/channels/voice/status",
                 "/channels/voice/dial", "/channels/voice/sms-status"):
        body, headers = signed_form(path, form, token="not-our-token")
        assert (await gateway.client.post(path, content=body, headers=headers)).status_code == 403
    assert rasa.calls == []
    assert await rows(gateway, Message) == []


async def test_twilio_asking_again_is_answered_from_the_first_turn(gateway: Gateway, rasa: StandInRasa) -> None:
    call = Call(gateway)
    await call.answer()
    url = call.next_url
    first = await call.say("路灯坏了")
    call.next_url = url
    again = await call.say("路灯坏了")
    assert rasa.texts() == ["路灯坏了"]  # one turn
    assert spoken(first) == spoken(again) == ["echo:路灯坏了"]
    assert len(await rows(gateway, Message, Message.direction == "out")) == 1


async def test_a_filed_order_is_read_back_digit_by_digit_and_texted(gateway: Gateway, twilio: StandInTwilio) -> None:
    call = Call(gateway)
    await call.answer()
    answer = await call.say("report:BJ-20261207-0007")
    [said] = spoken(answer)
    assert "B J, 2 0 2 6 1 2 0 7, 0 0 0 7" in said
    await eventually(lambda: twilio.sent)
    [text] = twilio.sent
    assert text["To"] == CALLER and text["From"] == FROM_NUMBER
    assert "BJ-20261207-0007" in text["Body"]
    assert text["StatusCallback"] == f"{PUBLIC_BASE}/channels/voice/sms-status"


async def test_a_long_answer_is_cut_at_a_sentence_and_texted_in_full(gateway: Gateway, twilio: StandInTwilio) -> None:
    call = Call(gateway)
    await call.answer()
    [said] = spoken(await call.say("long"))
    assert len(said) < 300 and said.endswith("完整内容已通过短信发送给您。")
    await eventually(lambda: twilio.sent)
    assert "".join(twilio.bodies(CALLER)).count("街道办事处办理") == 60


async def test_press_0_puts_the_caller_through_in_service_hours(gateway: Gateway, rasa: StandInRasa) -> None:
    call = Call(gateway)
    await call.answer()
    through = await call.press("0")
    assert rasa.texts() == ["/request_human"]
    dial = through.find("Dial")
    assert dial is not None and dial.findtext("Number") == "+8657112345"
    assert dial.attrib["action"] == f"{PUBLIC_BASE}/channels/voice/dial?lang=zh"
    [conversation] = await rows(gateway, Conversation)
    assert conversation.status == "pending"  # the transcript waits in the inbox for whoever picks up
    # Nobody answers: the caller leaves a message instead.
    call.next_url = "/channels/voice/dial?lang=zh"
    fallback = await call.step(**{k: v for k, v in load_form(VOICE / "dial_no_answer.form").items()
                                  if k.startswith("Dial")})
    assert fallback.find("Record") is not None


async def test_out_of_hours_the_caller_leaves_a_message_for_the_inbox(tmp_path: Path, rasa: StandInRasa,
                                                                       twilio: StandInTwilio) -> None:
    settings = gateway_settings(tmp_path, rasa, twilio, service_hours=closed_hours(),
                                voice_transfer_to="+8657112345")
    async with running_gateway(settings) as gw:
        call = Call(gw)
        await call.answer()
        twiml = await call.press("0")
        assert twiml.find("Dial") is None
        record = twiml.find("Record")
        assert record is not None
        assert record.attrib["action"] == f"{PUBLIC_BASE}/channels/voice/recording?lang=zh"
        assert record.attrib["transcribe"] == "true"
        assert record.attrib["transcribeCallback"] == f"{PUBLIC_BASE}/channels/voice/transcription?lang=zh"

        recording = load_form(VOICE / "recording.form")
        recording["RecordingUrl"] = recording["RecordingUrl"].replace("https://api.twilio.com", twilio.url)
        call.next_url = "/channels/voice/recording?lang=zh"
        goodbye = await call.step(**recording)
        assert goodbye.find("Hangup") is not None
        transcript = load_form(VOICE / "transcription.form")
        response = await call.post("/channels/voice/transcription?lang=zh", **transcript)
        assert response.status_code == 204

        async def kept() -> list[Message]:
            found = await rows(gw, Message, Message.direction == "in", Message.text.like("%voicemail%"))
            return found if found and (found[0].payload or {}).get("attachments", [{}])[0].get("ref") else []

        [voicemail] = await eventually(kept)
        [audio] = voicemail.payload["attachments"]
        assert audio["kind"] == "audio" and audio["mime"] == "audio/mpeg"
        assert (gw.settings.data_dir / "media").exists()
        stored = [p for p in (gw.settings.data_dir / "media").rglob("*") if p.is_file()]
        assert any(p.read_bytes() == MP3 for p in stored)
        words = await eventually(lambda: rows(gw, Message, Message.text.like("%Heping Road%"),
                                              Message.turn_state == "done"))
        assert words
        [conversation] = await rows(gw, Conversation)
        assert conversation.status == "pending"
        # The bot said nothing to the voicemail or its transcript.
        assert [m.text for m in await rows(gw, Message, Message.direction == "out")
                if "voicemail" in (m.text or "") or "Heping" in (m.text or "")] == []


async def test_a_slow_bot_is_texted_and_the_call_goes_on(tmp_path: Path, rasa: StandInRasa,
                                                         twilio: StandInTwilio) -> None:
    rasa.delay = 1.5
    settings = gateway_settings(tmp_path, rasa, twilio, voice_turn_seconds=0.3)
    async with running_gateway(settings) as gw:
        call = Call(gw)
        await call.answer()
        answer = await call.say("路灯坏了")
        assert "稍后会以短信发送给您" in spoken(answer)[0]
        assert answer.find("Gather") is not None
        await eventually(lambda: twilio.bodies(CALLER))
        assert twilio.bodies(CALLER) == ["echo:路灯坏了"]


async def test_a_hidden_number_is_never_a_contact_or_texted(gateway: Gateway, twilio: StandInTwilio) -> None:
    call = Call(gateway, caller="anonymous")
    await call.answer()
    await call.say("report:BJ-20261207-0008")
    [contact] = await rows(gateway, Contact)
    assert contact.phone is None
    [conversation] = await rows(gateway, Conversation)
    [inbound] = await rows(gateway, Message, Message.direction == "in")
    assert inbound.conversation_id == conversation.id
    assert twilio.sent == []


async def test_a_caller_id_that_failed_attestation_is_not_an_identity(gateway: Gateway) -> None:
    call = Call(gateway, StirVerstat="TN-Validation-Failed-C")
    await call.answer()
    await call.say("路灯坏了")
    [contact] = await rows(gateway, Contact)
    assert contact.phone is None


async def test_how_a_call_ended_is_kept_when_the_caller_spoke(gateway: Gateway) -> None:
    status = load_form(VOICE / "status_completed.form")
    body, headers = signed_form("/channels/voice/status", status)
    assert (await gateway.client.post("/channels/voice/status", content=body, headers=headers)).status_code == 204
    assert await rows(gateway, Message) == []  # never past the greeting: counted, not a conversation
    call = Call(gateway)
    await call.answer()
    await call.say("路灯坏了")
    assert (await gateway.client.post("/channels/voice/status", content=body, headers=headers)).status_code == 204
    ended = await eventually(lambda: rows(gateway, Message, Message.text == "[call completed, 95s]",
                                          Message.turn_state == "done"))
    assert ended
    calls = gateway.services.metrics.registry.get_sample_value("gateway_calls_total", {"event": "completed"})
    assert calls == 2.0


async def test_silence_asks_again_then_says_goodbye(gateway: Gateway, rasa: StandInRasa) -> None:
    call = Call(gateway)
    greeting = await call.answer()
    redirect = greeting.findtext("Redirect") or ""
    call.next_url = redirect.removeprefix(PUBLIC_BASE)
    again = await call.step()
    assert "没有听清" in spoken(again)[0]
    call.next_url = (again.findtext("Redirect") or "").removeprefix(PUBLIC_BASE)
    bye = await call.step()
    assert bye.find("Hangup") is not None
    assert rasa.calls == []


async def test_a_caller_is_the_same_citizen_as_their_sms_and_hears_from_agents_by_text(
        gateway: Gateway, twilio: StandInTwilio) -> None:
    from tests.channels.support import sms_form

    sms = await gateway.post_sms(sms_form("你好", sender=CALLER))
    assert sms.status_code == 200
    await gateway.settle()
    call = Call(gateway)
    await call.answer()
    await call.say("路灯坏了")
    conversations = {c.channel: c for c in await rows(gateway, Conversation)}
    # One citizen: the number the carrier vouched for, on both channels.
    assert conversations["voice"].contact_id == conversations["sms"].contact_id
    [contact] = await rows(gateway, Contact, Contact.id == conversations["voice"].contact_id)
    assert contact.phone == CALLER
    conversation = conversations["voice"]
    before = len(twilio.sent)
    # After the call, an agent's reply (or a notice when the order moves) reaches the caller as a text.
    await gateway.services.pipeline.say(conversation.id, [OutboundMessage(text="您反映的路灯已安排维修。")], "agent")
    await eventually(lambda: len(twilio.sent) > before)
    assert twilio.sent[-1]["To"] == CALLER and twilio.sent[-1]["Body"] == "您反映的路灯已安排维修。"
    assert twilio.sent[-1]["StatusCallback"] == f"{PUBLIC_BASE}/channels/voice/sms-status"


def test_numbers_are_read_one_character_at_a_time_but_dates_as_dates() -> None:
    from channels.voice.connector import spell_numbers

    said = spell_numbers("已为您登记工单 BJ-20261207-0007，预计 2026-12-11 前办结，电话 13812345678")
    assert "B J, 2 0 2 6 1 2 0 7, 0 0 0 7" in said and "2026-12-11" in said and "1 3 8 1 2 3 4 5 6 7 8" in said


async def test_an_oversized_request_is_refused_before_it_is_read(gateway: Gateway, rasa: StandInRasa) -> None:
    form = {**load_form(VOICE / "gather_speech.form"), "SpeechResult": "路" * 40_000}
    body, headers = signed_form(WEBHOOK, form)
    response = await gateway.client.post(WEBHOOK, content=body, headers=headers)
    assert response.status_code == 413
    assert rasa.calls == []
