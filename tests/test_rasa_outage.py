"""Rasa unreachable mid-conversation, and the gateway killed while a turn waits: nothing the citizen wrote is lost.

The real Rasa server stays up; a TCP forwarder between the gateway and Rasa is cut and restored, which is what the
gateway sees when the engine stops or the network drops.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import Stack, free_port, gateway_env, start_gateway, wait_http
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.rasa


def rows(db: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute(sql, args))


def test_rasa_down_then_back_and_a_crash_in_between(stack: Stack, tmp_path: Path) -> None:
    rasa_port = int(stack.rasa_url.rsplit(":", 1)[1])
    proxy = TcpProxy(rasa_port, free_port())
    proxy.start()
    port = free_port()
    # Reuse the session gateway's saved KB index (same KB file): this gateway then starts in seconds.
    if (stack.data_dir / "kb_index").exists():
        shutil.copytree(stack.data_dir / "kb_index", tmp_path / "kb_index")
    env = gateway_env(port, f"http://127.0.0.1:{proxy.listen_port}", tmp_path, RASA_TIMEOUT_SECONDS="5")
    base = f"http://127.0.0.1:{port}"
    gateway = start_gateway(env, tmp_path / "gateway.log")
    sender = f"outage-{uuid.uuid4().hex[:8]}"
    try:
        wait_http(f"{base}/readyz", 300, gateway)
        hello = httpx.post(f"{base}/channels/rest/webhook", json={"sender": sender, "message": "你好"}, timeout=30)
        assert hello.json()[0]["meta"]["intent"] == "greet"

        proxy.stop()  # Rasa becomes unreachable
        response = httpx.post(
            f"{base}/channels/rest/webhook", json={"sender": sender, "message": "居住证怎么办理"}, timeout=30
        )
        assert response.status_code == 200
        fallback = response.json()
        assert len(fallback) == 1 and "抱歉" in fallback[0]["text"]
        assert fallback[0]["meta"]["intent"] is None
        db = tmp_path / "gateway.db"
        waiting = rows(db, "SELECT id, turn_state, text FROM messages WHERE direction='in' AND turn_state='deferred'")
        assert [(r[1], r[2]) for r in waiting] == [("deferred", "居住证怎么办理")]
        message_id = waiting[0][0]

        # The gateway dies while the turn waits; Rasa comes back; a new gateway answers the stored turn.
        os.killpg(gateway.pid, signal.SIGKILL)
        gateway.wait()
        proxy.start()
        gateway = start_gateway(env, tmp_path / "gateway.log")
        wait_http(f"{base}/healthz", 120, gateway)
        deadline = time.monotonic() + 60
        answered: list[tuple[object, ...]] = []
        while time.monotonic() < deadline and not answered:
            answered = rows(
                db, "SELECT sender, text FROM messages WHERE reply_to_id=? AND sender='bot'", message_id
            )
            time.sleep(0.5)
        assert answered, (tmp_path / "gateway.log").read_text()[-3000:]
        assert "居住证首次申领" in str(answered[0][1])  # kb-household_registration-004's title
        assert rows(db, "SELECT count(*) FROM messages WHERE turn_state='deferred'") == [(0,)]
    finally:
        proxy.stop()
        if gateway.poll() is None:
            os.killpg(gateway.pid, signal.SIGTERM)
            gateway.wait(15)
