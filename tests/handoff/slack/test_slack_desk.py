"""Slack as a second desk, against a stand-in of Slack's Web API (slack_sdk on our side) and requests signed with
slack_sdk's own signature code, on an in-process gateway with its real database, handoff service and pipeline."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.storage import Conversation, Message
from tests.channels.support import Gateway, eventually
from tests.handoff.slack.conftest import HandoffRasa
from tests.handoff.slack.standin import CHANNEL, StandInSlack, event_body, interaction_body, signed

EVENTS = "/handoff/slack/events"


async def say(gw: Gateway, text: str, sender: str = "citizen-slack-1") -> list[dict[str, Any]]:
    response = await gw.client.post("/channels/rest/webhook", json={"sender": sender, "message": text})
    assert response.status_code == 200, response.text
    return list(response.json())


async def post_event(gw: Gateway, body: str, content_type: str = "application/json",
                     headers: dict[str, str] | None = None) -> Any:
    return await gw.client.post(EVENTS, content=body.encode(),
                                headers={"Content-Type": content_type, **(headers or signed(body))})


async def agent_messages(gw: Gateway, conversation_id: str) -> list[Message]:
    async with gw.db.sessions() as session:
        return list((await session.execute(
            select(Message).where(Message.conversation_id == conversation_id, Message.sender == "agent")
        )).scalars().all())


async def handed_over(gw: Gateway, slack: StandInSlack) -> tuple[str, str]:
    """A citizen asks for a person; returns (conversation id, the Slack thread's ts)."""
    await say(gw, "我的居住证办理进度怎么查")
    replies = await say(gw, "转人工")
    assert replies[0]["meta"]["conversation_status"] == "pending"
    roots = await eventually(lambda: [a for a in slack.sent("chat.postMessage") if "thread_ts" not in a])
    assert roots, "no handoff thread was opened in Slack"
    async with gw.db.sessions() as session:
        conversation_id = (await session.execute(select(Conversation.id))).scalar_one()
    return conversation_id, _ts_of_root(slack)


def _ts_of_root(slack: StandInSlack) -> str:
    # The stand-in numbers its messages in order: the first postMessage is the root.
    return f"{1763900000 + 1}.000100"


async def test_a_handoff_becomes_a_thread_with_the_history(gateway: Gateway, slack: StandInSlack) -> None:
    conversation_id, root_ts = await handed_over(gateway, slack)
    root = slack.sent("chat.postMessage")[0]
    assert root["channel"] == CHANNEL
    blocks = json.loads(root["blocks"]) if isinstance(root["blocks"], str) else root["blocks"]
    actions = [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert actions == ["handoff_claim", "handoff_resolve"]
    history = "\n".join(await eventually(lambda: slack.thread_texts(root_ts)))
    assert "我的居住证办理进度怎么查" in history and "转人工" in history and "正在为您转接人工" in history

    # The citizen writes while waiting: the bot stays quiet and the thread follows, once.
    await say(gateway, "请快一点 <b>谢谢</b>")
    assert await eventually(lambda: any("请快一点 &lt;b&gt;谢谢&lt;/b&gt;" in t for t in slack.thread_texts(root_ts)))
    await gateway.services.slack_desk.sync(conversation_id)  # a second worker's sync posts nothing again
    assert sum("请快一点" in t for t in slack.thread_texts(root_ts)) == 1


async def test_an_agent_claims_replies_in_the_thread_and_resolves(gateway: Gateway, slack: StandInSlack,
                                                                   handoff_rasa: HandoffRasa) -> None:
    conversation_id, root_ts = await handed_over(gateway, slack)
    bot_calls = len(handoff_rasa.calls)

    response = await post_event(gateway, interaction_body("block_actions_claim", conversation_id),
                                content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200, response.text
    async with gateway.db.sessions() as session:
        assert (await session.get(Conversation, conversation_id)).status == "open"  # type: ignore[union-attr]

    reply = event_body("thread_reply", thread_ts=root_ts)
    assert (await post_event(gateway, reply)).status_code == 200
    assert (await post_event(gateway, reply)).status_code == 200  # Slack's retry of the same event: once only
    sent = await agent_messages(gateway, conversation_id)
    assert [m.text for m in sent] == ["您好，我是12345热线的王芳，您的问题我来处理。"]
    assert sent[0].payload["meta"]["agent"] == "王芳 (Slack)"
    # The citizen sees it (the REST channel's history is the conversation), the bot was not asked, and the agent's
    # own words are not echoed back into the thread.
    await gateway.services.slack_desk.sync(conversation_id)
    assert not any("我来处理" in t for t in slack.thread_texts(root_ts))
    await say(gateway, "好的，我的证件号是多少需要提供吗")
    assert len(handoff_rasa.calls) == bot_calls

    resolve = interaction_body("block_actions_claim", conversation_id).replace("handoff_claim", "handoff_resolve")
    assert (await post_event(gateway, resolve, content_type="application/x-www-form-urlencoded")).status_code == 200
    async with gateway.db.sessions() as session:
        assert (await session.get(Conversation, conversation_id)).status == "resolved"  # type: ignore[union-attr]
    updates = slack.sent("chat.update")
    assert updates and updates[-1]["ts"] == root_ts
    final_blocks = updates[-1]["blocks"]
    final_blocks = json.loads(final_blocks) if isinstance(final_blocks, str) else final_blocks
    assert not [b for b in final_blocks if b["type"] == "actions"]  # nothing left to click


async def test_a_forged_or_stale_request_is_refused_and_nothing_happens(gateway: Gateway,
                                                                          slack: StandInSlack) -> None:
    conversation_id, root_ts = await handed_over(gateway, slack)
    reply = event_body("thread_reply", thread_ts=root_ts, text="forged words")
    forged = await post_event(gateway, reply, headers=signed(reply, secret="not-the-signing-secret"))
    assert forged.status_code == 401
    unsigned = await gateway.client.post(EVENTS, content=reply.encode(), headers={"Content-Type": "application/json"})
    assert unsigned.status_code == 401
    stale = await post_event(gateway, reply, headers=signed(reply, timestamp=1_600_000_000))
    assert stale.status_code == 401
    assert await agent_messages(gateway, conversation_id) == []


async def test_url_verification_and_a_claim_race(gateway: Gateway, slack: StandInSlack) -> None:
    body = event_body("url_verification")
    response = await post_event(gateway, body)
    assert response.status_code == 200
    assert response.json()["challenge"] == json.loads(body)["challenge"]

    conversation_id, root_ts = await handed_over(gateway, slack)
    claim = interaction_body("block_actions_claim", conversation_id)
    for _ in range(2):  # the second press finds it taken and says so in the thread
        assert (await post_event(gateway, claim, content_type="application/x-www-form-urlencoded")).status_code == 200
    notes = slack.thread_texts(root_ts)
    assert any("claim by" in t for t in notes) and any("⚠️" in t and "already open" in t for t in notes)
    async with gateway.db.sessions() as session:
        count = (await session.execute(select(func.count()).select_from(Conversation))).scalar_one()
    assert count == 1


async def test_slack_down_loses_nothing_and_a_known_agent_acts_as_themselves(gateway: Gateway,
                                                                              slack: StandInSlack) -> None:
    agent = await gateway.services.handoff.agents.create("Wang.Fang@binjiang.example", "s3cret-pass", "王芳",
                                                         departments=["hotline"])
    slack.down = True
    await say(gateway, "你好")
    await say(gateway, "转人工")
    await gateway.services.slack_desk.sweep()
    assert slack.sent("chat.postMessage") == []
    slack.down = False
    await gateway.services.slack_desk.sweep()  # the periodic sweep catches up: root, then the whole history
    root_ts = _ts_of_root(slack)
    assert any("转人工" in t for t in slack.thread_texts(root_ts))
    async with gateway.db.sessions() as session:
        conversation_id = (await session.execute(select(Conversation.id))).scalar_one()
    assert (await post_event(gateway, event_body("thread_reply", thread_ts=root_ts))).status_code == 200
    sent = await agent_messages(gateway, conversation_id)
    assert [m.payload["meta"]["agent_id"] for m in sent] == [agent.id]


@pytest.mark.parametrize("body", ["not json at all", "payload=%7Bbroken", "{}", '{"type": "event_callback"}'])
async def test_malformed_but_signed_requests_get_a_4xx_not_a_500(gateway: Gateway, body: str) -> None:
    response = await post_event(gateway, body)
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
