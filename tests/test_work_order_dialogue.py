"""The work-order form end to end: REST channel -> gateway -> real Rasa -> custom actions -> work-order service.

A report with everything in one message, one with every field asked for, a correction, a cancel, the status query
answered to the filer and refused to a stranger, the 回访 after closing (the notice kept in the conversation, its
button answered, the score on the order), and the 👍/👎 on a knowledge-base answer.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, RASA_TOKEN, Stack

pytestmark = pytest.mark.rasa
NUMBER = re.compile(r"BJ-\d{8}-\d{4}")


class Citizen:
    """One sender on the REST channel (one contact, one conversation)."""

    def __init__(self, stack: Stack, prefix: str = "wo") -> None:
        self.stack = stack
        self.sender = f"{prefix}-{uuid.uuid4().hex[:8]}"

    def say(self, text: str) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
        response = httpx.post(
            f"{self.stack.base_url}/channels/rest/webhook", json={"sender": self.sender, "message": text}, timeout=30
        )
        assert response.status_code == 200, response.text
        items = response.json()
        assert items, f"no reply to {text!r}"
        reply = "\n".join(item.get("text") or "" for item in items)
        return reply, items[-1]["meta"], items


def file_report(citizen: Citizen) -> str:
    """Everything in one message; only the phone is asked; "是" files it. Returns the order number."""
    reply, meta, _ = citizen.say("解放路和人民路路口的路灯坏了三天了")
    assert meta["intent"] == "report_problem"
    assert "联系电话" in reply and "位置" not in reply and "描述" not in reply, reply
    reply, _, items = citizen.say("13812345678")
    assert "解放路和人民路路口" in reply and "13812345678" in reply and "路灯坏了三天了" in reply, reply
    assert any(b.get("payload") == "/affirm" for item in items for b in item.get("buttons") or [])
    reply, meta, _ = citizen.say("是")
    number = meta["work_order_id"]  # a repeat of an open order answers with that order's number
    assert number and NUMBER.fullmatch(number), meta
    assert number in reply and re.search(r"\d{4}-\d{2}-\d{2}", reply), reply
    return str(number)


def test_report_with_everything_in_one_message(stack: Stack) -> None:
    file_report(Citizen(stack))


def test_a_form_in_progress_survives_a_model_activation(stack: Stack, rasa_model: Path) -> None:
    """The studio activates a model with PUT /model, which gives Rasa a new agent: the dialogue store must outlive
    it (bot/endpoints.yml), or the half-filled form is forgotten and the phone number is read as a new message."""
    citizen = Citizen(stack)
    reply, _, _ = citizen.say("解放路和人民路路口的路灯坏了三天了")
    assert "联系电话" in reply, reply
    response = httpx.put(f"{stack.rasa_url}/model", json={"model_file": str(rasa_model)},
                         params={"token": RASA_TOKEN}, timeout=180)
    assert response.status_code == 204, response.text
    reply, _, _ = citizen.say("13812345678")
    assert "解放路和人民路路口" in reply and "13812345678" in reply, reply


def test_every_field_is_asked_for(stack: Stack) -> None:
    citizen = Citizen(stack)
    reply, meta, _ = citizen.say("I want to report a problem")
    assert meta["intent"] in ("report_problem", "complain"), meta
    assert "what happened" in reply.lower(), reply
    reply, _, _ = citizen.say("the street light has been flickering all week")
    assert "where" in reply.lower(), reply
    place = "outside the bakery at 120 Jiefang Road, north side"
    reply, _, _ = citizen.say(place)
    assert "phone" in reply.lower(), reply
    reply, _, _ = citizen.say("12345")
    assert "doesn't look right" in reply, reply
    reply, _, _ = citizen.say("139 1234 5678")
    assert place in reply, "the address is kept whole"
    assert "13912345678" in reply
    reply, meta, _ = citizen.say("yes")
    assert meta["work_order_id"] and NUMBER.fullmatch(meta["work_order_id"]), (reply, meta)
    assert meta["work_order_id"] in reply


def test_a_field_is_corrected_before_filing(stack: Stack) -> None:
    citizen = Citizen(stack)
    citizen.say("江南路120号门口有个大坑")
    reply, _, _ = citizen.say("13812345678")
    assert "江南路120号" in reply, reply
    reply, meta, _ = citizen.say("地址改成江南路122号")
    assert "地点：江南路122号" in reply and "地点：江南路120号" not in reply, reply
    assert meta["work_order_id"] is None, "nothing filed before the citizen says yes"
    reply, _, _ = citizen.say("电话改成13900001111")
    assert "13900001111" in reply, reply
    reply, meta, _ = citizen.say("是")
    assert meta["work_order_id"] and NUMBER.fullmatch(meta["work_order_id"]), (reply, meta)


def test_cancel_files_nothing(stack: Stack) -> None:
    citizen = Citizen(stack)
    reply, meta, _ = citizen.say("我要投诉")
    assert meta["intent"] == "complain"
    assert "描述" in reply, reply
    reply, meta, _ = citizen.say("算了")
    assert "已取消" in reply and meta["work_order_id"] is None, reply
    # The form is gone: the next message is a new conversation turn, not an answer to the form.
    reply, meta, _ = citizen.say("你好")
    assert meta["intent"] == "greet"


def test_status_is_answered_to_the_filer_and_refused_to_a_stranger(stack: Stack) -> None:
    filer = Citizen(stack)
    number = file_report(filer)
    reply, meta, _ = filer.say(f"{number}处理得怎么样了")
    assert meta["intent"] == "check_work_order_status"
    assert meta["work_order_id"] == number
    assert "承办部门" in reply and "最近进展" in reply, reply
    reply, meta, _ = filer.say("查一下我最近的工单")
    assert meta["work_order_id"] == number and number in reply, reply
    # The same thing reported again the same day is linked to the open order, not filed twice.
    assert file_report(filer) == number

    reply, meta, _ = Citizen(stack, "stranger").say(f"{number}处理得怎么样了")
    assert meta["work_order_id"] is None
    assert "没有找到您名下的工单" in reply and "承办部门" not in reply and "解放路" not in reply, reply


def test_kb_answer_feedback_is_thanked(stack: Stack) -> None:
    citizen = Citizen(stack)
    _, meta, items = citizen.say("居住证第一次怎么申请")
    assert meta["kb_article_ids"], meta
    payloads = [b["payload"] for item in items for b in item.get("buttons") or []]
    vote = next(p for p in payloads if p.startswith("/kb_feedback") and '"helpful":true' in p)
    reply, meta, _ = citizen.say(vote)
    assert meta["intent"] == "kb_feedback" and "谢谢" in reply, reply


def survey_buttons(stack: Stack, conversation_id: str, timeout: float = 15.0) -> list[dict[str, str]]:
    """The 回访 notice's buttons, once the gateway's notifier stored it in the conversation (REST cannot push)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sqlite3.connect(stack.data_dir / "gateway.db") as db:
            rows = db.execute(
                "SELECT payload FROM messages WHERE conversation_id = ? AND sender = 'system' ORDER BY id",
                (conversation_id,),
            ).fetchall()
        for (raw,) in rows:
            payload = json.loads(raw)
            if (payload.get("proactive") or {}).get("kind") == "work_order_survey":
                return list(payload["buttons"])
        time.sleep(0.2)
    raise AssertionError("no 回访 notice was stored")


def test_closing_asks_the_filer_for_satisfaction_and_keeps_the_answer(stack: Stack) -> None:
    citizen = Citizen(stack, "rate")
    citizen.say("滨江大道88号门口的井盖丢了")
    citizen.say("13812345678")
    _, meta, _ = citizen.say("是")
    number = meta["work_order_id"]
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    for status in ("resolved", "closed"):
        response = httpx.post(f"{stack.base_url}/api/work-orders/{number}/status", json={"status": status},
                              headers=auth, timeout=30)  # fmt: skip
        assert response.status_code == 200, response.text
    order = httpx.get(f"{stack.base_url}/api/work-orders/{number}", headers=auth, timeout=30).json()
    assert order["phone"] == "13812345678"
    buttons = survey_buttons(stack, order["conversation_id"])
    assert [b["title"] for b in buttons] == ["满意", "一般", "不满意"]

    reply, meta, _ = Citizen(stack, "stranger").say(buttons[0]["payload"])
    assert meta["intent"] == "rate_work_order" and "无法登记" in reply, reply
    reply, meta, _ = citizen.say(buttons[0]["payload"])
    assert meta["intent"] == "rate_work_order" and "感谢" in reply, reply
    order = httpx.get(f"{stack.base_url}/api/work-orders/{number}", headers=auth, timeout=30).json()
    assert order["satisfaction"] == 5
    assert [s["note"] for s in order["steps"] if s["action"] == "satisfaction"] == ["satisfaction 5/5"]
