"""A phone call in the agent inbox, in headless Chromium: a caller asks for a person out of hours and leaves a
message after the tone; the agent opens the conversation and finds the call's transcript, the message's
transcript and its recording, which plays from the gateway (kept in the media folder, not Twilio's link)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, expect

from bot import server
from tests.browser.test_inbox import ADMIN_EMAIL, ADMIN_PASSWORD, AGENT_EMAIL, AGENT_PASSWORD, agent_login
from tests.channels.sms.test_sms_stack import wait_healthy
from tests.channels.support import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FIXTURES,
    FROM_NUMBER,
    PUBLIC_BASE,
    StandInTwilio,
    load_form,
    signed_form,
)
from tests.channels.voice.test_voice_channel import closed_hours
from tests.conftest import free_port, gateway_env, start_gateway

pytestmark = pytest.mark.browser
VOICE = FIXTURES / "voice" / "fixtures"


async def test_the_inbox_shows_a_calls_transcript_and_plays_its_recording(stack: Any, browser: Browser,
                                                                          tmp_path: Path) -> None:
    twilio = await StandInTwilio().start()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = gateway_env(
        port, stack.rasa_url, tmp_path, SERVICE_HOURS=closed_hours(), INBOX_ADMIN_EMAIL=ADMIN_EMAIL,
        INBOX_ADMIN_PASSWORD=ADMIN_PASSWORD, TWILIO_ACCOUNT_SID=ACCOUNT_SID, TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        TWILIO_FROM_NUMBER=FROM_NUMBER, TWILIO_API_BASE_URL=twilio.url, PUBLIC_BASE_URL=PUBLIC_BASE,
        VOICE_TRANSFER_TO="+8657112345",
    )
    gateway = start_gateway(env, tmp_path / "gateway.log")
    try:
        await wait_healthy(base, gateway)
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            login = await client.post("/api/inbox/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
            created = await client.post(
                "/api/inbox/agents", headers={"X-CSRF-Token": login.json()["csrf_token"]},
                json={"email": AGENT_EMAIL, "password": AGENT_PASSWORD, "name": "李娜", "departments": ["hotline"],
                      "capacity": 3, "language": "zh"},
            )
            assert created.status_code == 201, created.text

            call = {**load_form(VOICE / "incoming_call.form"), "CallStatus": "in-progress"}

            async def post(path: str, **fields: str) -> str:
                body, headers = signed_form(path, {**call, **fields})
                response = await client.post(path, content=body, headers=headers)
                assert response.status_code in (200, 204), response.text
                return response.text

            await post("/channels/voice/webhook", CallStatus="ringing")
            twiml = await post("/channels/voice/webhook?turn=1&lang=zh&menu=1", SpeechResult="我要投诉，给我转人工",
                               Confidence="0.88")
            assert "<Record" in twiml, twiml  # nobody at the desk: a message after the tone
            recording = load_form(VOICE / "recording.form")
            recording["RecordingUrl"] = recording["RecordingUrl"].replace("https://api.twilio.com", twilio.url)
            await post("/channels/voice/recording?lang=zh", **recording)
            await post("/channels/voice/transcription?lang=zh", **load_form(VOICE / "transcription.form"))

        agent = await agent_login(browser, base)
        try:
            item = agent.get_by_test_id("inbox-item").first
            await expect(item).to_contain_text("voice", timeout=15_000)
            await item.click()
            history = agent.get_by_test_id("history")
            citizen = history.locator('[data-from="citizen"]')
            await expect(citizen.first).to_contain_text("我要投诉，给我转人工", timeout=10_000)
            await expect(history).to_contain_text("Heping Road", timeout=10_000)  # the message's transcript
            player = history.get_by_test_id("recording")
            await expect(player).to_have_count(1, timeout=10_000)
            source = await player.get_attribute("src")
            assert source and source.startswith("/api/inbox/media/"), source
            playable = await agent.evaluate(
                "async (src) => { const r = await fetch(src); return [r.status, r.headers.get('content-type')]; }",
                source,
            )
            assert playable == [200, "audio/mpeg"], playable
        finally:
            await agent.context.close()
    except Exception:
        log = tmp_path / "gateway.log"
        if log.exists():
            sys.stderr.write(f"---- call inbox gateway.log (tail) ----\n{log.read_text(errors='replace')[-4000:]}\n")
        raise
    finally:
        server.stop(gateway)
        await twilio.stop()
