"""End to end against the real stack's Rasa: an SMS acked by a gateway process that is then killed (SIGKILL) before
the turn finished is answered by the next process, once, through the stand-in of Twilio's REST API."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.channels.support import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FROM_NUMBER,
    PUBLIC_BASE,
    StandInTwilio,
    eventually,
    signed_form,
    sms_form,
)
from tests.conftest import Stack, free_port, gateway_env, start_gateway

pytestmark = pytest.mark.rasa


async def wait_healthy(base: str, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            assert process.poll() is None, "gateway exited"
            try:
                if (await client.get(f"{base}/healthz", timeout=2)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise TimeoutError(base)


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute(sql))


async def test_an_sms_acked_before_a_crash_is_answered_after_restart(stack: Stack, tmp_path: Path) -> None:
    twilio = await StandInTwilio().start()

    async def hang(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(3600)  # a Rasa that never answers: the turn is in flight when the process dies

    silent = await asyncio.start_server(hang, "127.0.0.1", 0)
    silent_url = f"http://127.0.0.1:{silent.sockets[0].getsockname()[1]}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = {
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_FROM_NUMBER": FROM_NUMBER,
        "TWILIO_API_BASE_URL": twilio.url, "PUBLIC_BASE_URL": PUBLIC_BASE, "RASA_TIMEOUT_SECONDS": "60",
        "OUTBOX_RETRY_BASE_SECONDS": "0.1",
    }
    gateway = start_gateway(gateway_env(port, silent_url, tmp_path, **settings), tmp_path / "gateway.log")
    try:
        await wait_healthy(base, gateway)
        body, headers = signed_form("/channels/sms/webhook", sms_form("你好", sid="SM" + "c" * 32))
        async with httpx.AsyncClient() as client:
            ack = await client.post(f"{base}/channels/sms/webhook", content=body, headers=headers, timeout=10)
        assert ack.status_code == 200 and "<Response></Response>" in ack.text
        db = tmp_path / "gateway.db"
        assert rows(db, "SELECT turn_state FROM messages WHERE direction='in'") == [("received",)]
        os.killpg(gateway.pid, signal.SIGKILL)
        gateway.wait()
        assert twilio.sent == []

        gateway = start_gateway(gateway_env(port, stack.rasa_url, tmp_path, **settings), tmp_path / "gateway.log")
        await wait_healthy(base, gateway)
        await eventually(lambda: twilio.sent, timeout=90)
        assert len(twilio.sent) == 1, (tmp_path / "gateway.log").read_text()[-3000:]
        assert twilio.sent[0]["To"] == "+8613800138000" and twilio.sent[0]["Body"]
        assert rows(db, "SELECT turn_state FROM messages WHERE direction='in'") == [("done",)]
        greeting = twilio.sent[0]["Body"]

        # The same delivery again (Twilio retried during the outage) is answered once; a new one is answered.
        async with httpx.AsyncClient() as client:
            again = await client.post(f"{base}/channels/sms/webhook", content=body, headers=headers, timeout=10)
            assert again.status_code == 200
            body2, headers2 = signed_form("/channels/sms/webhook", sms_form("谢谢"))
            assert (await client.post(f"{base}/channels/sms/webhook", content=body2, headers=headers2)
                    ).status_code == 200
        await eventually(lambda: len(twilio.sent) >= 2, timeout=30)
        await asyncio.sleep(0.5)
        assert [m["Body"] for m in twilio.sent][:1] == [greeting] and len(twilio.sent) == 2
    finally:
        if gateway.poll() is None:
            os.killpg(gateway.pid, signal.SIGTERM)
            gateway.wait(15)
        silent.close()
        await twilio.stop()
