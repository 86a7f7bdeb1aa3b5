"""The phone line end to end against the real stack's Rasa (trained on training_data/, its custom actions searching
the test KB and filing work orders): a gateway process with the phone line on, called the way Twilio calls it
(signed by the SDK's RequestValidator, following the TwiML), texting through a stand-in of Twilio's REST API."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from channels.voice.connector import spell_numbers
from tests.channels.support import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FIXTURES,
    FROM_NUMBER,
    PUBLIC_BASE,
    StandInTwilio,
    eventually,
    load_form,
    signed_form,
)
from tests.conftest import running_stack

pytestmark = pytest.mark.rasa
NUMBER = re.compile(r"BJ-\d{8}-\d{4}")


class PhoneCall:
    def __init__(self, base: str, client: httpx.AsyncClient, sid: str, caller: str) -> None:
        self.base, self.client = base, client
        self.form = {**load_form(FIXTURES / "voice" / "fixtures" / "incoming_call.form"), "CallSid": sid,
                     "From": caller, "Caller": caller}
        self.next_url = "/channels/voice/webhook"

    async def step(self, **fields: str) -> list[str]:
        """What the caller hears after this step (the text of each <Say>)."""
        body, headers = signed_form(self.next_url, {**self.form, **fields})
        response = await self.client.post(self.base + self.next_url, content=body, headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        twiml = ET.fromstring(response.text)
        gather = twiml.find("Gather")
        if gather is not None:
            self.next_url = gather.attrib["action"].removeprefix(PUBLIC_BASE)
        return [say.text or "" for say in twiml.iter("Say")]


@pytest.fixture(scope="module")
async def phone_line(rasa_model: Path, tmp_path_factory: pytest.TempPathFactory
                     ) -> AsyncIterator[tuple[str, StandInTwilio]]:
    """Rasa and a gateway with the phone line, the bot's actions served by that gateway (so the orders it files
    are the caller's); Twilio's REST API is a local stand-in."""
    twilio = await StandInTwilio().start()
    settings = {
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_FROM_NUMBER": FROM_NUMBER,
        "TWILIO_API_BASE_URL": twilio.url, "PUBLIC_BASE_URL": PUBLIC_BASE, "OUTBOX_RETRY_BASE_SECONDS": "0.1",
        "SERVICE_HOURS": "24x7",
    }
    try:
        with running_stack(rasa_model, tmp_path_factory.mktemp("phone"), **settings) as stack:
            yield stack.base_url, twilio
    finally:
        await twilio.stop()


async def test_a_caller_asks_a_question_and_hears_the_answer(phone_line: tuple[str, StandInTwilio]) -> None:
    base, _twilio = phone_line
    async with httpx.AsyncClient() as client:
        call = PhoneCall(base, client, "CA" + "1" * 32, "+8613900139001")
        await call.step(CallStatus="ringing")
        heard = " ".join(await call.step(SpeechResult="第一次办居住证需要什么材料", Confidence="0.87"))
        assert "居住证" in heard, heard
        assert "kb-" not in heard  # never an internal id read out


async def test_a_caller_files_a_work_order_by_voice_and_gets_its_number_by_text(
        phone_line: tuple[str, StandInTwilio]) -> None:
    base, twilio = phone_line
    caller = "+8613900139002"
    async with httpx.AsyncClient() as client:
        call = PhoneCall(base, client, "CA" + "2" * 32, caller)
        await call.step(CallStatus="ringing")
        heard = " ".join(await call.step(SpeechResult="解放路和人民路路口的路灯坏了三天了", Confidence="0.9"))
        # The caller's own number is on the order already: the form goes straight to the confirmation, read back.
        for _ in range(3):
            if "请按1" in heard:
                break
            heard = " ".join(await call.step(SpeechResult="就在解放路和人民路路口", Confidence="0.9"))
        assert "请按1" in heard and spell_numbers(caller.removeprefix("+86")) in heard, heard  # read back
        heard = " ".join(await call.step(Digits="1"))  # "1" is the first choice spoken: confirm
        texts = await eventually(lambda: [b for b in twilio.bodies(caller) if NUMBER.search(b)], timeout=20)
    assert texts, twilio.sent
    number = NUMBER.search(texts[0]).group(0)  # type: ignore[union-attr]
    assert spell_numbers(number) in heard, heard  # read back one character at a time
    assert twilio.sent[-1]["From"] == FROM_NUMBER
