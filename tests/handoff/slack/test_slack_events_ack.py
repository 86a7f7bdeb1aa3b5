"""Every signed Slack request is acknowledged; a revoked or uninstalled app stops the desk.

Slack retries a delivery that did not get a 2xx and turns off an app's event subscriptions when most deliveries
fail, so the events and interactions the desk has no listener for must still get 200. The payloads are shaped like
Slack's documented examples (fixtures/), signed with slack_sdk's own SignatureVerifier; the desk talks to a stand-in
of Slack's Web API, which can answer as Slack does once the bot token is revoked.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select
from structlog.testing import capture_logs

from gateway.storage import Message
from handoff.slack.actions import HandoffDeskActions
from handoff.slack.desk import SlackDesk
from tests.channels.support import Gateway, eventually
from tests.handoff.slack.standin import (
    BOT_TOKEN,
    CHANNEL,
    FIXTURES,
    SIGNING_SECRET,
    StandInSlack,
    event_body,
    signed,
)
from tests.handoff.slack.test_slack_desk import EVENTS, agent_messages, handed_over, post_event, say

FORM = "application/x-www-form-urlencoded"
IGNORED_EVENTS = ["member_joined_channel", "app_mention", "reaction_added", "message_changed", "message_deleted",
                  "message_channel_join", "message_bot_message"]
IGNORED_INTERACTIONS = ["block_actions_unknown", "message_action"]


def interaction(name: str) -> str:
    return urlencode({"payload": (FIXTURES / f"{name}.json").read_text(encoding="utf-8")})


def posts_after(slack: StandInSlack, mark: int) -> list[dict[str, Any]]:
    return [args for name, args in slack.calls[mark:] if name == "chat.postMessage"]


async def readiness(gw: Gateway) -> dict[str, Any]:
    response = await gw.client.get("/readyz")
    body: dict[str, Any] = response.json()
    assert response.status_code == (200 if body["ready"] else 503)
    return body


async def inbound_count(gw: Gateway) -> int:
    async with gw.db.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(Message)
                                          .where(Message.direction == "in"))).scalar_one())


# ---- acknowledged: what the desk does not use ---------------------------------------------------------------------


@pytest.mark.parametrize("name", IGNORED_EVENTS)
async def test_events_without_a_use_are_acknowledged(gateway: Gateway, slack: StandInSlack, name: str) -> None:
    body = event_body(name)
    response = await post_event(gateway, body)
    assert response.status_code == 200, (name, response.status_code, response.text)
    assert await post_event(gateway, body) is not None  # Slack's redelivery of the same event: also fine
    assert gateway.services.slack_desk.state == "ok"
    assert await inbound_count(gateway) == 0 and slack.sent("chat.postMessage") == []


@pytest.mark.parametrize("name", IGNORED_INTERACTIONS)
async def test_interactions_without_a_use_are_acknowledged(gateway: Gateway, slack: StandInSlack, name: str) -> None:
    response = await post_event(gateway, interaction(name), content_type=FORM)
    assert response.status_code == 200, (name, response.status_code, response.text)
    assert slack.sent("chat.postMessage") == []


async def test_an_edit_of_an_agents_reply_is_acknowledged_and_not_sent_again(gateway: Gateway,
                                                                              slack: StandInSlack) -> None:
    conversation_id, root_ts = await handed_over(gateway, slack)
    assert (await post_event(gateway, event_body("thread_reply", thread_ts=root_ts))).status_code == 200
    edit = json.loads(event_body("message_changed"))
    edit["event"]["message"]["thread_ts"] = root_ts
    assert (await post_event(gateway, json.dumps(edit, ensure_ascii=False))).status_code == 200
    assert [m.text for m in await agent_messages(gateway, conversation_id)] == [
        "您好，我是12345热线的王芳，您的问题我来处理。"]


async def test_a_reply_also_sent_to_the_channel_reaches_the_citizen(gateway: Gateway, slack: StandInSlack) -> None:
    conversation_id, root_ts = await handed_over(gateway, slack)
    broadcast = event_body("thread_reply", thread_ts=root_ts, subtype="thread_broadcast", text="马上为您处理")
    assert (await post_event(gateway, broadcast)).status_code == 200
    assert [m.text for m in await agent_messages(gateway, conversation_id)] == ["马上为您处理"]


# ---- refused: unsigned, forged, stale, malformed --------------------------------------------------------------------


async def test_unsigned_forged_and_stale_requests_are_401_and_malformed_signed_ones_400(gateway: Gateway) -> None:
    body = event_body("app_uninstalled")
    now = str(int(time.time())).encode()
    for headers in ({}, signed(body, secret="not-the-signing-secret"), signed(body, timestamp=1_600_000_000),
                    {"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=abc"},
                    {"X-Slack-Request-Timestamp": now.decode(), "X-Slack-Signature": "v0=" + "签名".encode().hex()}):
        response = await gateway.client.post(EVENTS, content=body.encode(),
                                             headers={"Content-Type": "application/json", **headers})
        assert response.status_code == 401, (headers, response.text)
    # A signature header that is not ASCII (slack_sdk's compare_digest raises on it): 401, not 500.
    raw_headers = [(b"Content-Type", b"application/json"), (b"X-Slack-Request-Timestamp", now),
                   (b"X-Slack-Signature", "v0=签名".encode())]
    response = await gateway.client.post(EVENTS, content=body.encode(), headers=raw_headers)
    assert response.status_code == 401, response.text
    assert gateway.services.slack_desk.state == "ok"  # a forged app_uninstalled changes nothing

    # Bolt itself fails on this one (KeyError while matching listeners): still a 400, not its 500.
    view_without_type = urlencode({"payload": json.dumps({
        "type": "view_submission", "user": {"id": "U0AGENT01"}, "team": {"id": "T0BJ1CITY"},
        "view": {"id": "V1", "callback_id": "x", "state": {"values": {}}}})})
    for malformed, content_type in (("[1, 2]", "application/json"), ('{"type": 5}', "application/json"),
                                    ('{"type": "event_callback", "event": "message"}', "application/json"),
                                    ("payload=%5B%5D", FORM), ("payload=", FORM), ("a=b", FORM),
                                    (view_without_type, FORM)):
        response = await post_event(gateway, malformed, content_type=content_type)
        assert response.status_code == 400, (malformed, response.status_code, response.text)


async def test_a_non_utf8_body_is_refused_cleanly(gateway: Gateway) -> None:
    # HMAC'd by hand: slack_sdk's own code cannot sign bytes that are not UTF-8 (nor can Slack send them), and its
    # check raises on them; the route must still answer 4xx.
    body, stamp = b'{"type": "\xff"}', str(int(time.time()))
    digest = hmac.new(SIGNING_SECRET.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    response = await gateway.client.post(EVENTS, content=body, headers={
        "Content-Type": "application/json", "X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"})
    assert 400 <= response.status_code < 500


# ---- tokens_revoked / app_uninstalled stop the desk ------------------------------------------------------------------


async def test_tokens_revoked_stops_the_desk_and_readyz_reports_it(gateway: Gateway, slack: StandInSlack) -> None:
    conversation_id, root_ts = await handed_over(gateway, slack)
    before = await readiness(gateway)
    assert before["checks"]["slack"] == "ok"

    slack.revoked = True  # Slack revokes the token, then tells the app
    with capture_logs() as logs:
        response = await post_event(gateway, event_body("tokens_revoked"))
    assert response.status_code == 200
    desk = gateway.services.slack_desk
    assert desk.state == "revoked" and desk.stopped
    [stopped] = [e for e in logs if e["event"] == "slack.desk_stopped"]
    assert stopped["state"] == "revoked" and "tokens_revoked" in stopped["reason"]
    assert stopped["log_level"] == "warning"
    # The follower ends (it does not sleep until its next sweep).
    assert await eventually(lambda: not [t for t in gateway.services._tasks if t.get_name() == "slack-desk"])

    mark = len(slack.calls)
    await say(gateway, "请问还要等多久")  # the citizen keeps writing; a person is still to answer in the inbox
    await desk.sweep()
    await desk.sync(conversation_id)
    for name in ("thread_reply", "app_mention"):  # and Slack events still arriving are acknowledged, untouched
        assert (await post_event(gateway, event_body(name, thread_ts=root_ts))).status_code == 200
    await asyncio.sleep(0.2)
    assert slack.calls[mark:] == []  # no post, no retry, not even Bolt's auth.test
    assert await agent_messages(gateway, conversation_id) == []

    after = await readiness(gateway)
    assert after["checks"]["slack"] == "revoked"
    # Reported, not a reason to be unready: citizens are still served (the other checks decide as before).
    assert after["ready"] == before["ready"] == all(v == "ok" for k, v in after["checks"].items() if k != "slack")
    assert (await post_event(gateway, event_body("url_verification"))).status_code == 200


async def test_app_uninstalled_stops_the_desk(gateway: Gateway, slack: StandInSlack) -> None:
    await handed_over(gateway, slack)
    assert (await post_event(gateway, event_body("app_uninstalled"))).status_code == 200
    assert gateway.services.slack_desk.state == "uninstalled"
    mark = len(slack.calls)
    await say(gateway, "还在吗")
    await gateway.services.slack_desk.sweep()
    assert posts_after(slack, mark) == []
    assert (await readiness(gateway))["checks"]["slack"] == "uninstalled"


async def test_a_revoked_user_token_or_another_bot_leaves_the_desk_running(gateway: Gateway,
                                                                            slack: StandInSlack) -> None:
    users_only = event_body("tokens_revoked", tokens={"oauth": ["U0AGENT01"], "bot": []})
    assert (await post_event(gateway, users_only)).status_code == 200
    other_bot = event_body("tokens_revoked", tokens={"oauth": [], "bot": ["U0OTHERBOT"]})
    assert (await post_event(gateway, other_bot)).status_code == 200  # auth.test says our bot is U0BJBOT01
    assert gateway.services.slack_desk.state == "ok"
    await handed_over(gateway, slack)  # still posting


async def test_a_dead_token_answer_stops_the_desk_without_the_event(gateway: Gateway, slack: StandInSlack) -> None:
    slack.revoked = True  # revoked while the gateway was down: the event went nowhere
    await say(gateway, "你好")
    await say(gateway, "转人工")
    desk = gateway.services.slack_desk
    assert await eventually(lambda: desk.stopped)
    assert desk.state == "revoked"
    tries = len(slack.sent("chat.postMessage"))
    await say(gateway, "有人吗")
    await desk.sweep()
    assert len(slack.sent("chat.postMessage")) == tries == 1  # one refused post, then nothing


async def test_other_workers_stop_too(gateway: Gateway, slack: StandInSlack) -> None:
    services = gateway.services
    other = SlackDesk(token=BOT_TOKEN, signing_secret=SIGNING_SECRET, channel=CHANNEL, db=services.db,
                      coordination=services.coordination, actions=HandoffDeskActions(services.handoff),
                      api_base_url=slack.url)
    try:
        assert (await post_event(gateway, event_body("app_uninstalled"))).status_code == 200
        mark = len(slack.calls)
        await say(gateway, "转人工")
        await other.sweep()  # the second worker's periodic sweep finds the shared stop
        assert other.state == "uninstalled" and posts_after(slack, mark) == []
    finally:
        await other.close()
