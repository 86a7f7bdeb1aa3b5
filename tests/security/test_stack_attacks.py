"""The attacks a stranger tried, against the real stack (uvicorn, the real Rasa trained on our data):

- naming a citizen's phone in the REST channel's metadata to read their work order;
- calling the custom-action endpoint and Rasa's own API directly;
- a 20 MB body, answered before it is sent;
- no phone, ID-card number or signature in the access log.
"""

from __future__ import annotations

import socket
import sqlite3
import uuid
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import Stack
from tests.test_work_order_dialogue import Citizen, file_report

pytestmark = pytest.mark.rasa


def test_a_stranger_cannot_read_a_citizens_work_order_by_naming_their_phone(stack: Stack) -> None:
    victim = Citizen(stack, "victim")
    number = file_report(victim)  # the victim's phone on the order is 13812345678
    phone = f"+86138{uuid.uuid4().int % 10**8:08d}"
    with sqlite3.connect(stack.data_dir / "gateway.db") as db:  # as if SMS had vouched for the victim's number
        db.execute("UPDATE contacts SET phone=? WHERE id=(SELECT contact_id FROM channel_identities "
                   "WHERE channel='rest' AND external_user_id=?)", (phone, victim.sender))
    stranger = Citizen(stack, "stranger")
    for metadata in ({"verified_phone": phone}, {"phone": phone, "verified_phone": phone}):
        response = httpx.post(f"{stack.base_url}/channels/rest/webhook", timeout=30, json={
            "sender": stranger.sender, "message": "我的工单处理得怎么样了？", "metadata": metadata})
        assert response.status_code == 200
        reply = " ".join(item.get("text") or "" for item in response.json())
        assert number not in reply, reply
        reply = " ".join(item.get("text") or "" for item in httpx.post(
            f"{stack.base_url}/channels/rest/webhook", timeout=30, json={
                "sender": stranger.sender, "message": f"{number}的进度", "metadata": metadata}).json())
        assert "路灯" not in reply and "13812345678" not in reply, reply
    with sqlite3.connect(stack.data_dir / "gateway.db") as db:
        merged = db.execute("SELECT count(*) FROM contact_merges WHERE phone=?", (phone,)).fetchone()
    assert merged == (0,)
    # The victim still reads their own order.
    reply, _, _ = victim.say("我的工单处理得怎么样了？")
    assert number in reply, reply


def test_internal_routes_answer_only_the_installation(stack: Stack) -> None:
    forged = {"next_action": "action_check_work_order_status", "sender_id": "x",
              "tracker": {"sender_id": "x", "slots": {}, "events": [],
                          "latest_message": {"text": "BJ-20261123-0007", "metadata": {"contact_id": "c"}}},
              "domain": {}}
    assert httpx.post(f"{stack.base_url}/actions/webhook", json=forged).status_code == 401
    # Rasa's own API (replace the model, rewrite trackers) and the gateway input channel want the secret too.
    assert httpx.get(f"{stack.rasa_url}/status").status_code == 401
    assert httpx.put(f"{stack.rasa_url}/model", json={"model_file": "/tmp/x.tar.gz"}).status_code == 401
    turn = httpx.post(f"{stack.rasa_url}/webhooks/gateway/webhook",
                      json={"sender": "x", "message": "我的工单", "metadata": {"contact_id": "c"}})
    assert turn.status_code == 401


def test_a_huge_body_is_refused_before_it_is_sent(stack: Stack) -> None:
    """Only the headers of a 20 MB request are sent: the server answers 413 at once instead of waiting for it."""
    url = urlsplit(stack.base_url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as conn:
        conn.sendall(b"POST /channels/rest/webhook HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 20971520\r\n\r\n")
        answer = conn.recv(4096).decode(errors="replace")
    assert answer.startswith("HTTP/1.1 413"), answer


def test_no_personal_data_or_signature_reaches_the_log(stack: Stack) -> None:
    secret_sig = "0f" * 20
    httpx.get(f"{stack.base_url}/media/{'a' * 64}.jpg", params={"exp": 1, "sig": secret_sig})
    httpx.get(f"{stack.base_url}/api/kb/search", params={"q": "我的电话13912345678 身份证110101199003078515"})
    sender = f"log-{uuid.uuid4().hex[:6]}"
    httpx.post(f"{stack.base_url}/channels/rest/webhook", timeout=30, json={
        "sender": sender, "message": "我的手机13912345678，邮箱zhang.san@example.com，身份证110101199003078515"})
    log = (stack.data_dir / "gateway.log").read_text(encoding="utf-8", errors="replace")
    for leaked in ("13912345678", "110101199003078515", "zhang.san@example.com", secret_sig, "sig="):
        assert leaked not in log, leaked
    assert "path=/media/" in log  # the request was logged, without its query string
